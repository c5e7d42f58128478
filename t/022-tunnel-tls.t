# The tunnel over TLS, as deployed: nginx's ordinary ssl listener, the
# agent verifying the gateway's certificate against a private CA made by
# scripts/gpugate-ca, and refusing a gateway its CA did not sign.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/support";

use File::Temp qw(tempdir);
use Test::More;

use GpugateTest qw(start_nginx http_request http_send http_read
                   wait_until env_or_skip free_port);
use GpugateAgents qw(agent_bin start_agent write_token slurp);

env_or_skip(qw(TEST_NGINX_LOAD_MODULES TEST_NGINX_PG_PORT
               TEST_NGINX_MOCK_PORT));

my $root = "$FindBin::Bin/..";
my $agent_bin = agent_bin();
plan skip_all => 'run scripts/build.sh first' unless -x $agent_bin;

my $pg = $ENV{TEST_NGINX_PG_PORT};
my $mock = $ENV{TEST_NGINX_MOCK_PORT};
my $dir = tempdir('gpugate-tls-XXXXXX', TMPDIR => 1, CLEANUP => 1);

system("$root/scripts/gpugate-ca $dir/ca >/dev/null") == 0
    or BAIL_OUT('gpugate-ca failed');
system("$root/scripts/gpugate-ca $dir/other >/dev/null") == 0
    or BAIL_OUT('gpugate-ca failed');

write_token($dir, 'gpu-tls');

# nginx listens on it too: not the mock's port 0, nginx has no port file
my $tls_port = free_port();

my $ngx = start_nginx(http => <<"HTTP", server => <<'SRV');
    gpugate_auth_postgres "host=127.0.0.1 port=$pg user=gpugate dbname=gpugate";
    upstream agents {
        gpugate_tunnel queue_timeout=3s;
    }
    server {
        listen 127.0.0.1:$tls_port ssl;
        ssl_certificate $dir/ca/gateway.crt;
        ssl_certificate_key $dir/ca/gateway.key;
        location = /gpugate/tunnel {
            gpugate_tunnel_accept;
        }
    }
HTTP
        location /v1/ {
            gpugate_openai on;
            gpugate_model mock-model pool=agents;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass http://$gpugate_pool;
        }
SRV

sub agent {
    my ($ca, $log, @extra) = @_;
    return start_agent(dir => $dir, name => 'gpu-tls', log => $log,
                       gateway => "https://127.0.0.1:$tls_port",
                       args => [ '--ca-file', $ca,
                                 '--runtime', "http://127.0.0.1:$mock",
                                 '--models', 'mock-model', @extra ]);
}

my $chat = '{"model":"mock-model","messages":[{"role":"user","content":"x"}]}';

sub chat {
    return http_request($ngx->port, 'POST', '/v1/chat/completions',
                        { 'Content-Type' => 'application/json' }, $chat, 5);
}

# a CA that did not sign the gateway's certificate: refused, no tunnel
my $bad = agent("$dir/other/ca.crt", "$dir/bad.log");
ok(wait_until(5, sub { slurp("$dir/bad.log") =~ /certificate verify failed/ }),
   'wrong CA: agent refuses the gateway')
    or diag slurp("$dir/bad.log");
is(chat()->{status}, 503, 'wrong CA: no tunnel, 503');
$bad->stop;

# the right CA
my $good = agent("$dir/ca/ca.crt", "$dir/good.log");
ok(wait_until(10, sub { chat()->{status} == 200 }),
   'private CA: tunnel over TLS serves requests')
    or diag slurp("$dir/good.log");
like(chat()->{body}, qr/"object":"chat\.completion"/, 'answer through TLS');

# a name the certificate does not carry
my $wrong = agent("$dir/ca/ca.crt", "$dir/name.log",
                  '--server-name', 'gateway.invalid');
ok(wait_until(5, sub { slurp("$dir/name.log") =~ /certificate verify failed/ }),
   'hostname checked against the certificate');
$wrong->stop;

# --check validates without dialing; secrets never from argv
is(system("$agent_bin --check --gateway https://127.0.0.1:$tls_port "
          . "--name gpu-tls --token-file $dir/gpu-tls.token "
          . "--ca-file $dir/ca/ca.crt >/dev/null 2>&1") >> 8, 0,
   '--check accepts a good configuration');
is(system("$agent_bin --check --gateway ftp://x --name a "
          . "--token-file $dir/gpu-tls.token >/dev/null 2>&1") >> 8, 2,
   '--check: bad gateway URL exits 2');
my $out = `$agent_bin --gateway https://x --name a --token secret 2>&1`;
is($? >> 8, 2, '--token on the command line: exit 2');
like($out, qr/not accepted/, '... with the reason');

$good->signal('TERM');
ok(defined $good->wait_exit(5),
   'SIGTERM with nothing in flight: agent exits at once');

done_testing();
