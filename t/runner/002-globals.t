# The runner's file-wide settings, seen in the nginx.conf it wrote (served
# by nginx itself from $TEST_NGINX_SERVER_ROOT/conf, which upstream sets
# too): master_on, workers, worker_connections, env_to_nginx, log_level,
# no_root_location; and add_block_preprocessor, server_port, html_dir.

use Test::Nginx::Socket 'no_plan';

master_on();
workers(2);
worker_connections(128);
env_to_nginx('GPUGATE_RUNNER_ENV=hello');
log_level('warn');
no_root_location();

# a preprocessor supplies the request of every block that has none
add_block_preprocessor(sub {
    my $block = shift;
    $block->set_value('request', "GET /conf\n") unless defined $block->request;
});

# these helpers answer before any block runs
my $ok = server_port() =~ /^\d+$/ && html_dir() =~ m{/html$}
    && index(html_dir(), server_root()) == 0;
die "server_port/html_dir/server_root look wrong\n" unless $ok;

no_shuffle();
run_tests();

__DATA__

=== TEST 1: the global settings are in nginx.conf
--- config
    location = /conf {
        default_type text/plain;
        alias $TEST_NGINX_SERVER_ROOT/conf/nginx.conf;
    }
--- response_body_like eval
# under TEST_NGINX_USE_VALGRIND the bundled runner keeps the master off
my $master = $ENV{TEST_NGINX_USE_VALGRIND} ? 'o(?:n|ff)' : 'on';
"worker_processes\\s+2;.*master_process $master;.*error_log \\S+ warn;"
. ".*env GPUGATE_RUNNER_ENV=hello;.*worker_connections\\s+128;"
--- response_body_unlike
index index\.html
--- no_error_log
[debug]



=== TEST 2: without a root location nginx still serves html/ at server level
--- config
    location = /conf {
        alias $TEST_NGINX_SERVER_ROOT/conf/nginx.conf;
    }
--- request
GET /index.html
--- response_body_like: It works!
