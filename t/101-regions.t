# Regions: agents say theirs (region = / --region, X-Gpugate-Region at
# the handshake); the client's comes from the variable gpugate_region
# names (a map on a header here; geo or GeoIP2 in production).  Requests
# go to the client's region, then to the neighbours of
# gpugate_region_order in order, spilling when the region is full
# (counted in /metrics and /status); a request pinned by X-Gpugate-Region
# or by its key (gpugate-keys --region) never spills: 503 no_capacity
# naming the region; $gpugate_region names where each was served.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/support";

use Test::More;
use JSON::PP qw(decode_json);

use GpugateTest qw(http_send http_read http_request wait_until env_or_skip
                   make_agent make_key psql);
use GpugateScale qw(scale_mock scale_agent slurp node_metrics ADMIN);
use GpugatePrio qw(prio_node keys_tool served status_agents);

env_or_skip(qw(TEST_NGINX_LOAD_MODULES TEST_NGINX_PG_PORT
               TEST_NGINX_REDIS_PORT));
plan skip_all => 'run scripts/build.sh first'
    unless -x "$FindBin::Bin/../build/bin/gpugate-agent";

my $run = "t101-$$";
my ($key) = make_key("tenant-$run", name => 'regions');
my ($pinned, $pinned_id) = make_key("tenant-$run", name => 'pinned');
keys_tool('limit', $pinned_id, '--region', 'us-east');

my $mock = scale_mock('--ttft-ms', 0, '--token-delay-ms', 0);

my $ng = prio_node(
    ledger => 1,
    tunnel => 'queue_timeout=1500ms',
    http => "    map \$http_x_where \$client_region {\n"
          . "        default eu-west;\n"
          . "        us us-east;\n"
          . "        nowhere \"\";\n"
          . "        bad \"no/such\";\n"
          . "    }\n",
    location => "            gpugate_region \$client_region;\n"
              . "            gpugate_region_order eu-central us-east;\n");

my %region = (west => 'eu-west', central => 'eu-central', us => 'us-east');
my %log;
for my $k (sort keys %region) {
    my $name = "$run-$k";
    (undef, $log{$k}) = scale_agent(
        name => $name, token => make_agent($name), gateways => [$ng->port],
        runtime => $mock, capacity => 1,
        extra => ['--region', $region{$k}]);
}

ok(wait_until(30, sub { keys %{ status_agents($ng, "$run-") } == 3 }),
   'three agents of three regions connected')
    or diag(join '', map { slurp($_) } values %log);

my $ag = status_agents($ng, "$run-");
is_deeply({ map { $_ => $ag->{$_}{region} } keys %$ag }, \%region,
          '/status shows each agent\'s region');

my $seq = 0;

sub chat {
    my (%o) = @_;
    my %h = ('Content-Type' => 'application/json',
             Authorization => 'Bearer ' . ($o{key} || $key),
             'X-Seq' => $o{seq} // 's' . $seq++);
    $h{'X-Where'} = $o{where} if defined $o{where};
    $h{'X-Gpugate-Region'} = $o{pin} if defined $o{pin};
    # a hold: a stream the runtime stalls until its client leaves
    $h{'X-Mock-Stall-After'} = 1 if $o{hold};
    return http_send($ng->port, 'POST', '/v1/chat/completions', \%h,
                     '{"model":"mock-model","max_tokens":'
                     . ($o{hold} ? 10 : 1)
                     . ',"stream":' . ($o{hold} ? 'true' : 'false')
                     . ',"messages":[{"role":"user","content":"hi"}]}');
}

# where request "seq" was served, from the access log
sub where_served {
    my ($s) = @_;
    my $line;
    wait_until(10, sub {
        ($line) = grep { $_->[0] eq $s } @{ served($ng) };
        $line;
    });
    return $line ? $line->[3] : 'not logged';
}

sub inflight {
    my ($k) = @_;
    return status_agents($ng, "$run-")->{$k}{inflight} || 0;
}

# --- 1. the client's region, by the variable ------------------------------

my %got;
for my $i (1 .. 4) {
    for my $w (['', 'eu-west'], ['us', 'us-east']) {
        my $s = "r$i-$w->[0]";
        my $r = http_read(chat(where => $w->[0], seq => $s), 10);
        $got{$w->[1]}{ $r->{status} == 200 ? where_served($s) : 'failed' }++;
    }
}
is_deeply(\%got, { 'eu-west' => { 'eu-west' => 4 },
                   'us-east' => { 'us-east' => 4 } },
          'each request goes to its client\'s region ($gpugate_region)');

# --- 2. spill when full: the neighbours in order --------------------------

my $m0 = node_metrics($ng);
my ($spills0) = $m0 =~ /^gpugate_tunnel_region_spills_total (\d+)/m;

my $b1 = chat(where => '', hold => 1, seq => 'hold-west');
ok(wait_until(10, sub { inflight('west') }), 'eu-west is busy');
my $r = http_read(chat(where => '', seq => 'spill1'), 10);
is(where_served('spill1'), 'eu-central',
   'eu-west full: to eu-central, the first neighbour');

my $b2 = chat(where => 'us', hold => 1, seq => 'hold-central',
              pin => 'eu-central');
ok(wait_until(10, sub { inflight('central') }), 'eu-central is busy too');
$r = http_read(chat(where => '', seq => 'spill2'), 10);
is(where_served('spill2'), 'us-east',
   'eu-west and eu-central full: to us-east, the next');

my ($spills1) = node_metrics($ng)
                =~ /^gpugate_tunnel_region_spills_total (\d+)/m;
is($spills1 - $spills0, 2, 'two spills counted in /metrics');
like(node_metrics($ng),
     qr/^gpugate_tunnel_region_capacity_requests\{region="eu-west"\} 1$/m,
     '/metrics: capacity by region');

# --- 3. pinned: no spill --------------------------------------------------

# eu-west is still busy: a request pinned there waits, then 503
$r = http_read(chat(where => 'us', pin => 'eu-west', seq => 'pin-full'),
               10);
my $j = eval { decode_json($r->{body}) } || {};
ok($r->{status} == 503 && ($j->{error}{code} // '') eq 'no_capacity'
   && ($j->{error}{message} // '') =~ /pinned to region "eu-west"/,
   'pinned to a full region: 503 no_capacity naming it, no spill')
    or diag("$r->{status} $r->{body}");

$r = http_read(chat(pin => 'ap-south', seq => 'pin-none'), 10);
$j = eval { decode_json($r->{body}) } || {};
ok($r->{status} == 503 && ($j->{error}{code} // '') eq 'no_capacity'
   && ($j->{error}{message} // '') =~ /region "ap-south"/,
   'pinned to a region without agents: 503 naming it')
    or diag("$r->{status} $r->{body}");

close $_ for $b1, $b2;
ok(wait_until(10, sub { !inflight('west') && !inflight('central') }),
   'the holds ended');

# the key's pin: an eu client of a key pinned to us-east
for my $i (1 .. 3) {
    $r = http_read(chat(key => $pinned, where => '', seq => "kp$i"), 10);
}
is(join(',', map { where_served("kp$_") } 1 .. 3),
   'us-east,us-east,us-east', 'a key pinned to us-east: served there');

$r = http_read(chat(key => $pinned, pin => 'eu-west', seq => 'kp-other'),
               10);
$j = eval { decode_json($r->{body}) } || {};
ok($r->{status} == 400 && ($j->{error}{code} // '') eq 'invalid_region',
   'that key asking another region: 400 invalid_region')
    or diag("$r->{status} $r->{body}");

# the ledger's rows of the pinned key: region and priority
ok(wait_until(15, sub {
       psql("SELECT count(*) FROM usage_events WHERE api_key_id = $pinned_id"
            . " AND region = 'us-east' AND priority = 5") >= 3 }),
   'the ledger stores the region served and the priority (5, the default)')
    or diag(psql("SELECT region, priority, status FROM usage_events"
                 . " WHERE api_key_id = $pinned_id"));

# the pin travels with the key's cached record: a second node reads the
# key from Redis and, having no agent of us-east, refuses
{
    my $ng2 = prio_node(tunnel => 'queue_timeout=500ms');
    $r = http_read(http_send($ng2->port, 'POST', '/v1/chat/completions',
                             { 'Content-Type' => 'application/json',
                               Authorization => "Bearer $pinned",
                               'X-Seq' => 'node2' },
                             '{"model":"mock-model","messages":'
                             . '[{"role":"user","content":"hi"}]}'), 10);
    $j = eval { decode_json($r->{body}) } || {};
    ok($r->{status} == 503
       && ($j->{error}{message} // '') =~ /pinned to region "us-east"/,
       'a node reading the pinned key from Redis keeps the pin')
        or diag("$r->{status} $r->{body}");
    my ($l) = grep { $_->[0] eq 'node2' } @{ served($ng2) };
    wait_until(10, sub { ($l) = grep { $_->[0] eq 'node2' }
                                @{ served($ng2) }; $l });
    is($l ? $l->[5] : '', 'redis', '...the key came from Redis');
    $ng2->stop;
}

# --- 4. bad values ---------------------------------------------------------

for my $bad ('eu west', 'a' x 32, 'eu/west', '') {
    $r = http_read(chat(pin => $bad, seq => 'bad'), 10);
    $j = eval { decode_json($r->{body}) } || {};
    ok($r->{status} == 400 && ($j->{error}{code} // '') eq 'invalid_region',
       "X-Gpugate-Region \"$bad\": 400 invalid_region")
        or diag("$r->{status} $r->{body}");
}

# a variable that gives no region, or no valid one: any agent serves
for my $w ('nowhere', 'bad') {
    $r = http_read(chat(where => $w, seq => "w-$w"), 10);
    is($r->{status}, 200, "client region from the variable \"$w\": "
                          . 'served by some agent');
}

done_testing();
