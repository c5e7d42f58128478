# Session affinity (gpugate_prefix_affinity session=on): X-Gpugate-Session,
# or else the body's "user", pins a conversation to the agent that served
# it (without it the least-recently-chosen tie-break alternates short
# prompts), on every endpoint the router hashes and on others; the header
# wins over "user"; an agent at its capacity, or gone, is not waited for:
# another serves and becomes the session's agent.  A pool without
# session=on ignores both.

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
my $dir = tempdir('gpugate-sess-XXXXXX', TMPDIR => 1, CLEANUP => 1);

my %mock = map { $_ => start_mock(dir => $dir, name => $_, args => ['--quiet'],
                                  models => 'mock-model,other-model') } qw(a b);

my $ngx = start_nginx(workers => 1, http => <<"HTTP", server => <<'SRV');
    gpugate_auth_postgres "host=127.0.0.1 port=$pg user=gpugate dbname=gpugate";
    upstream agents {
        gpugate_tunnel queue=64 queue_timeout=5s;
        gpugate_prefix_affinity session=on;
    }
    upstream plain {
        gpugate_tunnel queue=64 queue_timeout=5s;
        gpugate_prefix_affinity;
    }
    gpugate_model mock-model pool=agents;
    gpugate_model other-model pool=plain;
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
    $agent{$m} = start_agent(dir => $dir, name => "sess-$m", port => $port,
                             args => [ '--runtime',
                                       'http://127.0.0.1:' . $mock{$m}->port,
                                       '--models', 'mock-model, other-model',
                                       '--capacity', 2, '--spare', 2 ]);
}

agent($_) for qw(a b);
ok(wait_parked($port, 'sess-a', 2) && wait_parked($port, 'sess-b', 2),
   'two agents parked');

# a short chat (no prefix block) with a session header and/or a user
sub body {
    my (%o) = @_;
    my $user = defined $o{user} ? qq("user":"$o{user}",) : '';
    return '{"model":"' . ($o{model} || 'mock-model') . qq(",$user)
         . ($o{stream} ? '"stream":true,' : '')
         . '"messages":[{"role":"user","content":"hi"}]}';
}

sub chat {
    my (%o) = @_;
    my $path = $o{path} || '/v1/chat/completions';
    my $body = $path =~ /embeddings/
        ? '{"model":"mock-model","input":"x"'
          . (defined $o{user} ? qq(,"user":"$o{user}") : '') . '}'
        : body(%o);
    return http_request($port, 'POST', $path,
                        { 'Content-Type' => 'application/json',
                          %{ $o{hdr} || {} } }, $body);
}

sub served {
    my %s;
    for my $m (qw(a b)) {
        $s{$m} = 0;
        $s{$m} += mock_served($mock{$m}->port, $_)
            for '/v1/chat/completions', '/v1/embeddings';
    }
    return \%s;
}

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


sub many {
    my ($n, %o) = @_;
    return where([ map { sub { chat(%o) } } 1 .. $n ]);
}

sub same { my @x = @_; return @x && !grep { $_ ne $x[0] } @x }

# --- control: without a session, short prompts alternate ----------------

my @c = many(4);
is_deeply([ sort @c ], [ qw(a a b b) ], 'no session: by load, alternating')
    or diag "@c";

# --- the header pins a conversation ---------------------------------------

my @s1 = many(4, hdr => { 'X-Gpugate-Session' => 'conv-1' });
ok(same(@s1), 'X-Gpugate-Session: four turns on one agent') or diag "@s1";
my @s2 = many(4, hdr => { 'X-Gpugate-Session' => 'conv-2' });
ok(same(@s2), '... another session on one agent too') or diag "@s2";
my @e = many(3, path => '/v1/embeddings',
             hdr => { 'X-Gpugate-Session' => 'conv-1' });
is_deeply(\@e, [ ($s1[0]) x 3 ], '... the session holds on embeddings')
    or diag "@e";

# --- the body's "user" ----------------------------------------------------

my @u = many(4, user => 'alice');
ok(same(@u), '"user": four requests on one agent') or diag "@u";
my @ue = many(2, path => '/v1/embeddings', user => 'alice');
is_deeply(\@ue, [ ($u[0]) x 2 ], '... on embeddings too') or diag "@ue";

# the header wins: conv-1's agent, whatever "user" says; pick a user whose
# agent is the other one so that the test tells them apart
{
    my $other = $s1[0] eq 'a' ? 'b' : 'a';
    my $who;
    for my $i (1 .. 20) {
        my ($at) = many(1, user => "user-$i");
        if ($at eq $other) { $who = "user-$i"; last }
    }
    ok($who, "a user pinned to agent $other");
    my @h = many(3, user => $who, hdr => { 'X-Gpugate-Session' => 'conv-1' });
    is_deeply(\@h, [ ($s1[0]) x 3 ], 'the header wins over "user"')
        or diag "@h";
}

# --- a pool without session=on ignores both -------------------------------

{
    my @p = many(4, model => 'other-model',
                 hdr => { 'X-Gpugate-Session' => 'conv-1' });
    is_deeply([ sort @p ], [ qw(a a b b) ],
              'session=off: the header is ignored') or diag "@p";
}

# --- at capacity the session moves, and stays where it went ---------------

{
    my $h = $s1[0];
    my $o = $h eq 'a' ? 'b' : 'a';
    # two turns held open (streams stalled after a token) until we leave
    my @slow = map {
        http_send($port, 'POST', '/v1/chat/completions',
                  { 'Content-Type' => 'application/json',
                    'X-Gpugate-Session' => 'conv-1',
                    'X-Mock-Stall-After' => 1 }, body(stream => 1))
    } 1 .. 2;
    ok(wait_until(10, sub {
        my ($x) = agent_instances($port, "sess-$h");
        $x && $x->{inflight} == 2 }), 'the session\'s agent is at capacity');
    # the mock counts a request when it sends the head: until both held
    # turns have their first event, "where" could see one of them counted
    # after its first look and name the wrong agent
    read_until($_, qr/^data: /m, 10) for @slow;

    my @r = many(1, hdr => { 'X-Gpugate-Session' => 'conv-1' });
    is_deeply(\@r, [ $o ], 'the next turn goes to the other agent, no wait')
        or diag "@r";
    close $_ for @slow;
    ok(wait_until(10, sub {
        my ($x) = agent_instances($port, "sess-$h");
        $x && $x->{inflight} == 0 }), 'the held turns end when we leave');
    @r = many(2, hdr => { 'X-Gpugate-Session' => 'conv-1' });
    is_deeply(\@r, [ $o, $o ], '... and the session stays with its new agent')
        or diag "@r";
}

# --- an agent that leaves: its sessions move ------------------------------

{
    my $h = $u[0];
    my $o = $h eq 'a' ? 'b' : 'a';
    $agent{$h}->stop('KILL');
    ok(wait_until(10, sub { !agent_instances($port, "sess-$h") }),
       'alice\'s agent left');
    my @r = many(3, user => 'alice');
    is_deeply(\@r, [ ($o) x 3 ], 'alice is served by the other agent')
        or diag "@r";
}

unlike($ngx->log, qr/\[alert\]|exited on signal/, 'no alert or crash');

done_testing();
