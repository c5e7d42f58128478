# Prefix affinity (gpugate_prefix_affinity): requests whose prompts share
# leading blocks go to the agent that served that prefix while loads are
# equal (without the directive the least-recently-chosen tie-break would
# alternate them), an agent loaded above the margin is passed over, the
# memory survives an nginx reload (the zone is kept), and an agent that
# leaves is forgotten: a new process of it is not taken for the holder.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/support";

use File::Temp qw(tempdir);
use Test::More;

use GpugateTest qw(start_nginx http_request http_send wait_until
                   env_or_skip);
use GpugateAgents qw(agent_bin start_mock start_agent mock_served
                     agent_instances wait_parked tunnel_status read_until);

env_or_skip(qw(TEST_NGINX_LOAD_MODULES TEST_NGINX_PG_PORT));

plan skip_all => 'run scripts/build.sh first' unless -x agent_bin();

my $pg = $ENV{TEST_NGINX_PG_PORT};
my $dir = tempdir('gpugate-aff-XXXXXX', TMPDIR => 1, CLEANUP => 1);

my %mock = map { $_ => start_mock(dir => $dir, name => $_, args => ['--quiet'],
                                  models => 'mock-model') } qw(a b);

my $ngx = start_nginx(workers => 1, http => <<"HTTP", server => <<'SRV');
    gpugate_auth_postgres "host=127.0.0.1 port=$pg user=gpugate dbname=gpugate";
    upstream agents {
        gpugate_tunnel queue=64 queue_timeout=5s;
        gpugate_prefix_affinity block=16 depth=4 margin=1;
    }
    gpugate_model mock-model pool=agents;
HTTP
        location = /gpugate/tunnel {
            gpugate_tunnel_accept ping=1s;
        }
        location = /gpugate/status {
            gpugate_tunnel_status;
        }
        location /v1/ {
            gpugate_openai on;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass http://$gpugate_pool;
        }
SRV

my $port = $ngx->port;
my %agent;

sub agent {
    my ($m) = @_;
    $agent{$m} = start_agent(dir => $dir, name => "aff-$m", port => $port,
                             args => [ '--runtime',
                                       'http://127.0.0.1:' . $mock{$m}->port,
                                       '--models', 'mock-model',
                                       '--spare', 2 ]);
}

agent($_) for qw(a b);
ok(wait_parked($port, 'aff-a', 2) && wait_parked($port, 'aff-b', 2),
   'two agents parked');

my %sys = (
    P => 'You are the support assistant of ACME; answer in one line.',
    Q => 'Tu es un assistant de traduction; reponds en francais seulement.',
);

sub body {
    my ($sys, $user, $stream) = @_;
    my $m = defined $sys ? qq({"role":"system","content":"$sys"},) : '';
    return qq({"model":"mock-model",) . ($stream ? '"stream":true,' : '')
         . qq("messages":[${m}{"role":"user","content":"$user"}]});
}

sub chat {
    my ($sys, $user, $hdr) = @_;
    return http_request($port, 'POST', '/v1/chat/completions',
                        { 'Content-Type' => 'application/json',
                          %{ $hdr || {} } }, body($sys, $user));
}

sub served { my %s = map { $_ => mock_served($mock{$_}->port) } qw(a b); \%s }

# which mock answered each of the requests that "code" makes, one by one
sub where {
    my ($code) = @_;
    my @at;
    for my $c (@$code) {
        my $before = served();
        my $r = $c->();
        my $after = served();
        push @at, $r->{status} != 200 ? "status $r->{status}"
                : (grep { $after->{$_} > $before->{$_} } qw(a b))[0] // '?';
    }
    return @at;
}

# --- a shared prefix sticks to one agent while loads are equal ----------

my @p = where([ map { my $i = $_; sub { chat($sys{P}, "question $i") } } 1 .. 6 ]);
my $holder = $p[0];
is_deeply(\@p, [ ($holder) x 6 ],
          'six prompts with one system prompt: all to one agent')
    or diag "@p";
my $other = $holder eq 'a' ? 'b' : 'a';

# a prompt shorter than a block has no prefix: the tie-break alternates
my @short = where([ map { sub { chat(undef, 'hi') } } 1 .. 2 ]);
is_deeply([ sort @short ], [ 'a', 'b' ], 'short prompts: by load, both agents')
    or diag "@short";

# another system prompt: its own holder, the first one's is kept
my @q = where([ map { my $i = $_; sub { chat($sys{Q}, "phrase $i") } } 1 .. 3 ]);
is(scalar(grep { $_ eq $q[0] } @q), 3, 'another prefix sticks too') or diag "@q";
is_deeply([ where([ sub { chat($sys{P}, 'again') } ]) ], [ $holder ],
          '... and the first prefix still goes to its holder');

my $st = tunnel_status($port);
my ($pool) = grep { $_->{upstream} eq 'agents' } @{ $st->{pools} };
ok($pool->{affinity} && $pool->{affinity}{hits} >= 6
   && $pool->{affinity}{entries} >= 8 && $pool->{affinity}{block} == 16,
   '/status shows the pool\'s affinity settings and counters')
    or diag explain $pool;

# --- a reload keeps what the zone knows -----------------------------------

{
    # the holder was chosen last: the tie-break points at the other agent
    where([ sub { chat($sys{P}, 'before the reload') } ]);

    $ngx->mark;
    $ngx->reload;
    ok($ngx->wait_log(qr/reconfiguring/), 'nginx reloaded');
    ok(wait_until(20, sub {
        my @w = split ' ', `pgrep -P ${\ $ngx->pid}`;
        return 0 unless @w == 1;
        for my $m (qw(a b)) {
            my $idle = 0;
            for my $a (agent_instances($port, "aff-$m")) {
                $idle += $_->{pid} == $w[0] ? $_->{idle} : 0
                    for @{ $a->{workers} || [] };
            }
            return 0 unless $idle;
        }
        return 1 }), 'both agents supply the new worker');

    my @r = where([ map { my $i = $_; sub { chat($sys{P}, "after $i") } } 1 .. 3 ]);
    is_deeply(\@r, [ ($holder) x 3 ],
              'after the reload the prefix still goes to its holder')
        or diag "@r";
}

# --- a holder loaded above the margin is passed over ----------------------

{
    # two streams of the prefix held open on its holder (margin=1: the
    # second still goes there, 1 in flight against 0) until we leave
    my @slow = map {
        http_send($port, 'POST', '/v1/chat/completions',
                  { 'Content-Type' => 'application/json',
                    'X-Mock-Stall-After' => 1 }, body($sys{P}, "slow $_", 1))
    } 1 .. 2;
    ok(wait_until(10, sub {
        my ($h) = agent_instances($port, "aff-$holder");
        $h && $h->{inflight} == 2 }), 'two slow requests on the holder');
    # the mock counts a request when it sends the head: until both held
    # streams have their first event, one of them could be counted
    # between the two looks below and pass for the third request
    read_until($_, qr/^data: /m, 10) for @slow;

    my $before = served();
    my $r = chat($sys{P}, 'while busy');
    my $after = served();
    is($r->{status}, 200, 'a third request of the prefix answered');
    is($after->{$other} - $before->{$other}, 1,
       '... by the other agent: the holder has 2 in flight against 0');
    is($after->{$holder} - $before->{$holder}, 0,
       '... not by the loaded holder');

    close $_ for @slow;
    ok(wait_until(10, sub {
        my ($h) = agent_instances($port, "aff-$holder");
        $h && $h->{inflight} == 0 }), 'the held streams end when we leave');
}

# --- an agent that leaves is forgotten ------------------------------------

{
    # the prefix of Q: its holder goes away
    my ($qh) = where([ sub { chat($sys{Q}, 'who holds you') } ]);
    my $qo = $qh eq 'a' ? 'b' : 'a';

    $agent{$qh}->stop('KILL');
    ok(wait_until(10, sub { !agent_instances($port, "aff-$qh") }),
       'the holder\'s agent left');

    my @r = where([ map { my $i = $_; sub { chat($sys{Q}, "gone $i") } } 1 .. 2 ]);
    is_deeply(\@r, [ ($qo) x 2 ], 'its prefix goes to the agent left')
        or diag "@r";

    # a new process of that agent (another instance) is not the holder,
    # though the tie-break would choose it (least recently chosen)
    agent($qh);
    ok(wait_parked($port, "aff-$qh", 2), 'the agent is back as a new process');

    @r = where([ map { my $i = $_; sub { chat($sys{Q}, "back $i") } } 1 .. 3 ]);
    is_deeply(\@r, [ ($qo) x 3 ],
              'its old entries are not taken for the new process')
        or diag "@r";
}

unlike($ngx->log, qr/\[alert\]|\[emerg\]|exited on signal/, 'no alert or crash');

# --- configuration mistakes -----------------------------------------------

{
    my $bad = eval {
        start_nginx(server => "", http => <<'HTTP');
    upstream x {
        gpugate_prefix_affinity;
    }
HTTP
    };
    ok(!$bad && $@ =~ /must follow "gpugate_tunnel"/,
       'gpugate_prefix_affinity before gpugate_tunnel: refused')
        or diag $@;

    for my $p ('block=8', 'depth=0', 'depth=33', 'kv_max=101', 'mode=x',
               'session=yes', 'margin=-1', 'zone=1k', 'color=red') {
        my $n = eval {
            start_nginx(server => "", http => <<"HTTP");
    upstream x {
        gpugate_tunnel;
        gpugate_prefix_affinity $p;
    }
HTTP
        };
        ok(!$n && $@ =~ /invalid (parameter|zone size)/, "$p refused")
            or diag $@;
    }
}

done_testing();
