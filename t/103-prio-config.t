# The settings of priorities, regions and the agent score are checked at
# startup (nginx -t) with a precise message: gpugate_tunnel's aging=,
# ttft_step=, cooldown=, error_weight=, failures=; gpugate_region and
# gpugate_region_order; the documented defaults and a full valid set
# pass.  Plain Test::More, no server started.

use strict;
use warnings;

use File::Temp qw(tempdir);
use Test::More;

my $nginx = $ENV{TEST_NGINX_BINARY} || 'nginx';
my $modules = $ENV{TEST_NGINX_LOAD_MODULES}
    or plan skip_all => 'TEST_NGINX_LOAD_MODULES is not set';

my $dir = tempdir(CLEANUP => 1);
mkdir "$dir/logs";

# nginx_t(upstream params, location lines) -> (exit status, output)
sub nginx_t {
    my ($params, $loc) = @_;
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
    upstream agents { gpugate_tunnel $params; }
    server {
        listen 127.0.0.1:1;
        location / {
            $loc
            proxy_pass http://agents;
        }
    }
}
CONF
    close $fh;

    my $out = `$nginx -t -p $dir -c $dir/nginx.conf -e $dir/logs/error.log 2>&1`;
    return ($? >> 8, $out);
}

my @bad = (
    [ 'aging=0', 'aging=0', '', qr/"aging=0"/ ],
    [ 'aging= not a time', 'aging=soon', '', qr/"aging=soon"/ ],
    [ 'ttft_step= empty', 'ttft_step=', '', qr/"ttft_step="/ ],
    [ 'cooldown= negative', 'cooldown=-1s', '', qr/"cooldown=-1s"/ ],
    [ 'error_weight above 1000', 'error_weight=1001', '',
      qr/invalid "error_weight=1001", expected 0\.\.1000/ ],
    [ 'failures= not a number', 'failures=3x', '',
      qr/invalid "failures=3x", expected 0\.\.1000/ ],
    [ 'unknown parameter', 'priority=forward', '',
      qr/invalid parameter "priority=forward"/ ],
    [ 'a bad neighbour region', '',
      'gpugate_region_order eu-west "us east";',
      qr/invalid region "us east"/ ],
    [ 'an overlong neighbour region', '',
      'gpugate_region_order ' . ('r' x 32) . ';',
      qr/invalid region "r{32}"/ ],
    [ 'gpugate_region twice', '',
      'gpugate_region $http_x_a; gpugate_region $http_x_b;',
      qr/"gpugate_region" directive is duplicate/ ],
    [ 'gpugate_region_order twice', '',
      'gpugate_region_order a; gpugate_region_order b;',
      qr/"gpugate_region_order" directive is duplicate/ ],
    [ 'gpugate_region of an unknown variable', '',
      'gpugate_region $no_such_variable_here;',
      qr/unknown "no_such_variable_here" variable/ ],
);

for my $c (@bad) {
    my ($name, $params, $loc, $re) = @$c;
    my ($rc, $out) = nginx_t($params, $loc);
    ok($rc != 0 && $out =~ $re, "refused: $name") or diag($out);
}

my ($rc, $out) = nginx_t('', '');
is($rc, 0, 'the defaults pass') or diag($out);
unlike($out, qr/variables_hash/,
       'no variables_hash warning with the module\'s variables');

($rc, $out) = nginx_t('queue=8 aging=250ms ttft_step=1s error_weight=0 '
                      . 'failures=0 cooldown=1m',
                      'gpugate_region $http_x_region; '
                      . 'gpugate_region_order eu-central us-east.2 A_b;');
is($rc, 0, 'every setting, with failures=0 and error_weight=0, passes')
    or diag($out);

done_testing();
