# The npm "openai" SDK (unmodified, the version t/082 pins) reads the
# reasoning split: message.reasoning_content of a chat answer and
# delta.reasoning_content of a stream, the final answer in content, for
# an answer the runtime sent with inline <think>...</think> (the mock's
# X-Mock-Think, its reasoning one byte per event in the stream).
#
# Runs when node and npm are present; the package is installed once into
# build/npm (GPUGATE_NPM_DIR elsewhere), and the test is skipped when the
# registry cannot be reached.  Needs: TEST_NGINX_LOAD_MODULES,
# TEST_NGINX_MOCK_PORT (scripts/test.sh).

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/support";

use JSON::PP;
use Test::More;

use GpugateTest qw(start_nginx env_or_skip sdk_install);

env_or_skip(qw(TEST_NGINX_LOAD_MODULES TEST_NGINX_MOCK_PORT));

for my $tool (qw(node npm)) {
    plan skip_all => "$tool is not installed"
        unless system("command -v $tool >/dev/null 2>&1") == 0;
}

my ($npm, $have_sdk) = sdk_install();

plan skip_all => "npm could not install the SDK (see $npm/npm-install.log)"
    unless $have_sdk;

my $mock = $ENV{TEST_NGINX_MOCK_PORT};

my $ng = start_nginx(http => <<"HTTP", server => <<"SRV");
    upstream think { server 127.0.0.1:$mock; keepalive 4; }
    gpugate_model mock-model pool=think;
    gpugate_reasoning split;
HTTP
        location /v1/ {
            gpugate_openai on;
            proxy_pass http://\$gpugate_pool;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
SRV

local $ENV{GG_NPM_DIR} = $npm;
my $port = $ng->port;
my @lines = `node '$FindBin::Bin/support/reasoning-sdk.mjs' 'http://127.0.0.1:$port' mock-model 2>&1`;
my %r = map { my $j = eval { decode_json($_) }; $j ? ($j->{name} => $j) : () }
        @lines;
diag @lines unless keys %r == 2;

for my $name ('chat.completions.create', 'chat.completions.create stream') {
    my $r = $r{$name} || { detail => 'no result' };
    my $d = $r->{detail};
    ok($r->{ok}, "$name: answered") or diag explain $r;
    is($d->{reasoning}, ' the user wants', "$name: reasoning_content");
    like($d->{content}, qr/\A\w+( \w+)+\z/,
         "$name: content, the final answer alone");
}

ok($r{'chat.completions.create stream'}{detail}{chunks} > 20,
   'the stream came in its many events');

$ng->stop;

done_testing();
