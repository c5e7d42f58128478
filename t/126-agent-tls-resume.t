# The agent resumes the gateway's TLS session for its further tunnels (a
# resumed tunnel shares the session's parsed certificate: about 11 KiB
# less per parked tunnel, and no verification CPU), and a session is only
# offered: a gateway that does not know it makes a full handshake, with
# the certificate verified as ever.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/support";

use File::Temp qw(tempdir);
use Test::More;

use GpugateTest qw(start_nginx http_request wait_until env_or_skip
                   free_port);
use GpugateAgents qw(agent_bin start_agent write_token slurp);

env_or_skip(qw(TEST_NGINX_LOAD_MODULES TEST_NGINX_PG_PORT
               TEST_NGINX_MOCK_PORT));

my $root = "$FindBin::Bin/..";
plan skip_all => 'run scripts/build.sh first' unless -x agent_bin();

my $pg = $ENV{TEST_NGINX_PG_PORT};
my $mock = $ENV{TEST_NGINX_MOCK_PORT};
my $dir = tempdir('gpugate-resume-XXXXXX', TMPDIR => 1, CLEANUP => 1);

for my $ca (qw(ca other)) {
    system("$root/scripts/gpugate-ca $dir/$ca >/dev/null") == 0
        or BAIL_OUT('gpugate-ca failed');
}

write_token($dir, 'gpu-resume');

# a ticket key that outlives reloads, as on a gateway that sets one: the
# tunnels a reload closes come back resumed
open my $tk, '>', "$dir/ticket.key" or die "$dir/ticket.key: $!";
print $tk join '', map { chr int rand 256 } 1 .. 80;
close $tk;

my $tls_port = free_port();

# gateway CA: whose certificate the gateway shows, TLS VERSIONS: offered
sub gateway {
    my ($ca, $versions, $port) = @_;
    return start_nginx(port => $port, http => <<"HTTP", server => <<'SRV');
    gpugate_auth_postgres "host=127.0.0.1 port=$pg user=gpugate dbname=gpugate";
    upstream agents {
        gpugate_tunnel queue_timeout=3s;
    }
    server {
        listen 127.0.0.1:$tls_port ssl;
        ssl_certificate $dir/$ca/gateway.crt;
        ssl_certificate_key $dir/$ca/gateway.key;
        ssl_protocols $versions;
        ssl_session_ticket_key $dir/ticket.key;
        location = /gpugate/tunnel {
            gpugate_tunnel_accept;
        }
    }
HTTP
        location = /gpugate/status {
            gpugate_tunnel_status;
        }
        location /v1/ {
            gpugate_openai on;
            gpugate_model mock-model pool=agents;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass http://$gpugate_pool;
        }
SRV
}

my $chat = '{"model":"mock-model","messages":[{"role":"user","content":"x"}]}';

sub chat {
    my ($port) = @_;
    return http_request($port, 'POST', '/v1/chat/completions',
                        { 'Content-Type' => 'application/json' }, $chat, 5);
}

sub count {
    my ($log, $re) = @_;
    my @m = slurp($log) =~ /$re/g;
    return scalar @m;
}

my $full = qr/TLS up \(full handshake\)/;
my $resumed = qr/TLS up \(session resumed\)/;

for my $versions ('TLSv1.3', 'TLSv1.2') {
    my $ngx = gateway('ca', $versions);
    my $log = "$dir/agent-$versions.log";
    my $agent = start_agent(dir => $dir, name => 'gpu-resume', log => $log,
                            gateway => "https://127.0.0.1:$tls_port",
                            args => [ '--ca-file', "$dir/ca/ca.crt",
                                      '--runtime', "http://127.0.0.1:$mock",
                                      '--models', 'mock-model',
                                      '--spare', '2',
                                      '--log-level', 'debug' ]);

    # the first tunnels are dialed at once, before any session exists
    ok(wait_until(20, sub { count($log, $full) >= 1
                            && count($log, qr/session to resume/) >= 1
                            && chat($ngx->port)->{status} == 200 }),
       "$versions: the first tunnels make full handshakes")
        or diag slurp($log);

    my ($r0, $f0) = (count($log, $resumed), count($log, $full));

    if ($versions eq 'TLSv1.3') {
        # a reload closes the parked tunnels; the agent dials them again
        $ngx->reload;
        ok(wait_until(20, sub { count($log, $resumed) - $r0 >= 2 }),
           "$versions: the tunnels dialed since resume the gateway's "
           . "session") or diag slurp($log);
        is(count($log, $full), $f0, "$versions: no full handshake since");

    } else {
        # a request takes a parked tunnel: the agent dials one more (at
        # once, maybe before $r0 was read: counted from the start)
        chat($ngx->port) for 1 .. 4;
        ok(wait_until(20, sub { count($log, $resumed) >= 1 }),
           "$versions: a tunnel dialed since resumes the gateway's "
           . "session") or diag slurp($log);
    }

    my $ok = 0;
    for (1 .. 8) {
        my $r = chat($ngx->port);
        $ok++ if $r->{status} == 200
                 && $r->{body} =~ /"object":"chat\.completion"/;
    }
    is($ok, 8, "$versions: requests through resumed tunnels are answered");

    next if $versions ne 'TLSv1.3';

    # the gateway restarted with a certificate from another CA: the
    # session is offered, not known there, and the full handshake fails
    # verification; no tunnel, no request served
    my $port = $ngx->port;
    $ngx->stop;
    my $bad = gateway('other', $versions, $port);
    my $seen = count($log, qr/certificate verify failed/);
    ok(wait_until(20, sub {
           count($log, qr/certificate verify failed/) > $seen }),
       'a gateway that does not know the session: verified, refused')
        or diag slurp($log);
    is(chat($bad->port)->{status}, 503, '... no tunnel to it: 503');

    $agent->stop;
    $bad->stop;
}

done_testing();
