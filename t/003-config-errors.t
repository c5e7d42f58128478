# Configuration mistakes are refused at startup with a precise message
# (nginx -t), never accepted and misbehaving later.  Plain Test::More: the
# Test::Nginx format has no portable way to expect a failed start.
#
# Needs: TEST_NGINX_LOAD_MODULES, TEST_NGINX_BINARY (scripts/test.sh).

use strict;
use warnings;

use File::Temp qw(tempdir);
use Test::More;

my $nginx = $ENV{TEST_NGINX_BINARY} || 'nginx';
my $modules = $ENV{TEST_NGINX_LOAD_MODULES}
    or plan skip_all => 'TEST_NGINX_LOAD_MODULES is not set';

my $dir = tempdir(CLEANUP => 1);
mkdir "$dir/logs";

# nginx_t(http_block) -> (exit status, output of nginx -t)
sub nginx_t {
    my ($http) = @_;
    my $load = join '', map { "load_module $_;\n" } split ' ', $modules;

    open my $fh, '>', "$dir/nginx.conf" or die "$dir/nginx.conf: $!";
    print $fh <<"CONF";
$load
error_log $dir/logs/error.log;
pid $dir/logs/nginx.pid;
events { worker_connections 16; }
http {
    client_body_temp_path $dir; proxy_temp_path $dir;
    fastcgi_temp_path $dir; uwsgi_temp_path $dir; scgi_temp_path $dir;
$http
}
CONF
    close $fh;

    my $out = `$nginx -t -p $dir -c $dir/nginx.conf -e $dir/logs/error.log 2>&1`;
    return ($? >> 8, $out);
}

my @bad = (
    [ 'duplicate model',
      "gpugate_model m1; gpugate_model m1;",
      qr/duplicate model "m1"/ ],
    [ 'space in a model name',
      "gpugate_model 'a b';",
      qr/invalid character 0x20 in model name "a b"/ ],
    [ 'quote in a model name',
      "gpugate_model 'a\"b';",
      qr/invalid character 0x22 in model name/ ],
    [ 'overlong model name',
      'gpugate_model ' . ('x' x 257) . ';',
      qr/model name must be 1\.\.256 bytes long/ ],
    [ 'comma in a model name (key model lists are comma-separated)',
      "gpugate_model a,b;",
      qr/invalid character 0x2c in model name "a,b"/ ],
    [ 'star inside a model name',
      "gpugate_model 'a*b';",
      qr/invalid character 0x2a in model name/ ],
    [ 'empty pool',
      "gpugate_model m pool=;",
      qr/"gpugate_model" directive has an empty pool=/ ],
    [ 'renaming a prefix',
      "gpugate_model 'm*' target=x;",
      qr/cannot rename a model prefix/ ],
    [ 'unknown parameter',
      "gpugate_model m bogus=1;",
      qr/invalid parameter "bogus=1", expected pool=, target=, price=/ ],
    [ 'price without a slash',
      "gpugate_model m price=3;",
      qr/invalid "price=3", expected price=IN\/OUT/ ],
    [ 'price with 7 decimals',
      "gpugate_model m price=0.0000001/1;",
      qr/invalid "price=0\.0000001\/1", expected price=IN\/OUT/ ],
    [ 'gpugate_limits without a zone',
      "server { location / { gpugate_limits on; } }",
      qr/"gpugate_limits on" needs "gpugate_limits_zone"/ ],
    [ 'gpugate_limits_zone too small',
      "gpugate_limits_zone zone=l:1k;",
      qr/invalid zone size "1k"/ ],
    [ 'gpugate_limits_zone without a size',
      "gpugate_limits_zone zone=l;",
      qr/invalid parameter "zone=l", expected zone=NAME:SIZE/ ],
    [ 'gpugate_limits_estimate bytes_per_token=0',
      "gpugate_limits_estimate bytes_per_token=0;",
      qr/invalid value in "bytes_per_token=0"/ ],
    [ 'gpugate_limits_redis with a name',
      "gpugate_limits_redis redis.example:6379;",
      qr/invalid Redis address "redis\.example:6379"/ ],
    [ 'gpugate_limits_redis nodes=0',
      "gpugate_limits_redis 127.0.0.1:6379 nodes=0;",
      qr/invalid "nodes=0"/ ],
    [ 'gpugate_models with an argument',
      "server { location / { gpugate_models x; } }",
      qr/invalid number of arguments in "gpugate_models"/ ],
    [ 'gpugate_models twice',
      "server { location / { gpugate_models; gpugate_models; } }",
      qr/"gpugate_models" directive is duplicate/ ],
    [ 'gpugate_models in http context',
      "gpugate_models;",
      qr/"gpugate_models" directive is not allowed here/ ],
    [ 'gpugate_models and gpugate_error in one location',
      "server { location / { gpugate_error; gpugate_models; } }",
      qr/"gpugate_models" directive conflicts with another content handler/ ],
    [ 'gpugate_error status out of range',
      "server { location / { gpugate_error 302; } }",
      qr/invalid status "302", expected 400\.\.599/ ],
    [ 'gpugate_openai with a bad value',
      "gpugate_openai yes;",
      qr/invalid value "yes" in "gpugate_openai" directive/ ],
);

for my $case (@bad) {
    my ($name, $http, $re) = @$case;
    my ($rc, $out) = nginx_t($http);
    isnt($rc, 0, "$name: nginx -t fails");
    like($out, $re, "$name: message names the problem");
}

my ($rc, $out) = nginx_t(<<'GOOD');
    gpugate_model llama-3.1-8b;
    gpugate_model qwen* pool=qwen;
    gpugate_model gpt-4o pool=llama target=llama-3.1-8b;
    gpugate_openai on;
    gpugate_model priced price=0.15/0.6;
    gpugate_limits_zone zone=lim:1m;
    gpugate_limits_redis 127.0.0.1:6379 nodes=3 sync=200ms;
    gpugate_limits_estimate max_tokens=512 bytes_per_token=3;
    gpugate_limits on;
    gpugate_limits_stream_cut on;
    server {
        location = /v1/models { gpugate_model other; gpugate_models; }
        location /v1/ { proxy_pass http://127.0.0.1:1; }
        location @e { gpugate_error; }
    }
GOOD
is($rc, 0, 'a valid configuration passes nginx -t') or diag($out);

done_testing();
