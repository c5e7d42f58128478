# The official "openai" npm SDK, unmodified (the version t/082 pins),
# against the Batch API through the tunnel (issue 19): files.create of a
# JSONL file, files.retrieve, batches.create, batches.retrieve until the
# batch is done, files.content of the output file, batches.list paged by
# the SDK's own iterator, and batches.cancel of a finished batch read as
# the SDK's error.
#
# Runs when node and npm are present; the package is installed once into
# build/npm (GPUGATE_NPM_DIR elsewhere) and the test is skipped when the
# registry cannot be reached.
#
# Needs (scripts/test.sh exports them): TEST_NGINX_LOAD_MODULES,
# TEST_NGINX_PG_PORT, TEST_NGINX_REDIS_PORT.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/support";

use JSON::PP qw(decode_json);
use Test::More;

use GpugateTest qw(make_key make_agent wait_until env_or_skip
                   http_request sdk_install);
use GpugateScale qw(scale_mock scale_agent slurp);
use GpugateBatch qw(batch_node);

env_or_skip(qw(TEST_NGINX_LOAD_MODULES TEST_NGINX_PG_PORT
               TEST_NGINX_REDIS_PORT));

my $root = "$FindBin::Bin/..";
plan skip_all => 'run scripts/build.sh first'
    unless -x "$root/build/bin/gpugate-agent";

for my $tool (qw(node npm)) {
    plan skip_all => "$tool is not installed"
        unless system("command -v $tool >/dev/null 2>&1") == 0;
}

my ($npm, $have_sdk) = sdk_install();

plan skip_all => "npm could not install the SDK (see $npm/npm-install.log)"
    unless $have_sdk;

my $run = "t108-$$";
my ($key) = make_key("tenant-$run", name => 'batch-sdk');
my $ng = batch_node(name => $run, runner => 'concurrency=4 interval=100ms'
                    . ' lease=20s');
my $port = $ng->port;
my $mock = scale_mock('--ttft-ms', 0, '--token-delay-ms', 0);
my (undef, $alog) = scale_agent(name => "$run-a", token =>
    make_agent("$run-a"), gateways => [$port], runtime => $mock,
    capacity => 4);

ok(wait_until(30, sub {
    http_request($port, 'POST', '/v1/chat/completions',
        { Authorization => "Bearer $key",
          'Content-Type' => 'application/json' },
        '{"model":"mock-model","max_tokens":1,"messages":'
        . '[{"role":"user","content":"hi"}]}', 5)->{status} == 200 }),
   'the agent serves') or diag(slurp($alog));

local $ENV{GG_NPM_DIR} = $npm;
my @lines = `node '$FindBin::Bin/support/batch-sdk.mjs' 'http://127.0.0.1:$port' '$key' 2>&1`;
my %r = map { my $j = eval { decode_json($_) }; $j ? ($j->{name} => $j) : () }
        @lines;
diag @lines unless keys %r == 7;

sub check {
    my ($name, $test, $what) = @_;
    my $r = $r{$name} || { detail => 'no result' };
    ok($r->{ok} && $test->($r->{detail} || {}), "$name: $what")
        or diag explain $r;
}

check('files.create', sub {
    $_[0]{id} =~ /^file-/ && $_[0]{purpose} eq 'batch'
    && $_[0]{filename} eq 'sdk.jsonl' && $_[0]{bytes} > 0 },
    'a batch file');
check('files.retrieve', sub { $_[0]{object} eq 'file' }, 'the file');
check('batches.create', sub {
    $_[0]{id} =~ /^batch_/ && $_[0]{status} eq 'in_progress' },
    'in progress');
check('batches.retrieve', sub {
    $_[0]{status} eq 'completed' && $_[0]{counts}{total} == 5
    && $_[0]{counts}{completed} == 5 && $_[0]{output_file_id}
    && !$_[0]{error_file_id} && $_[0]{metadata}{run} eq 'sdk' },
    'polled until completed, 5 of 5');
check('files.content', sub {
    join(',', map { "$_->{custom_id}:$_->{status}:$_->{tokens}" } @{ $_[0] })
    eq join(',', map { "sdk-$_:200:$_" } 1 .. 5) },
    'the output file, each line in order with its answer');
check('batches.list', sub { @{ $_[0]{ids} } >= 1
    && $_[0]{ids}[0] eq $r{'batches.create'}{detail}{id} },
    'the newest first, through the SDK\'s pages');
check('batches.cancel', sub {
    $_[0]{status} == 409 && $_[0]{code} eq 'not_cancellable' },
    'a finished batch: the SDK\'s ConflictError');

unlike($ng->log, qr/\[(alert|crit|emerg)\]/, 'nothing alarming logged');

done_testing();
