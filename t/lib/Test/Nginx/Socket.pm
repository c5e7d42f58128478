package Test::Nginx::Socket;

=head1 NAME

Test::Nginx::Socket - gpugate's stand-in for upstream Test::Nginx::Socket

=head1 SYNOPSIS

    # t/foo.t -- the same file runs under upstream Test::Nginx (CPAN)
    use Test::Nginx::Socket 'no_plan';     # or: plan tests => ...

    repeat_each(2);
    no_shuffle();
    run_tests();

    __DATA__

    === TEST 1: hello
    --- config
        location = /t { return 200 "hi\n"; }
    --- request
    GET /t
    --- response_body
    hi

    # when `perl -MTest::Nginx::Socket -e1` fails (upstream absent):
    TEST_NGINX_PORT=1984 prove -I t/lib t/foo.t

=head1 DESCRIPTION

Upstream Test::Nginx cannot be installed from CPAN on gpugate's build
machines.  This implementation, written from scratch on Debian's Test::Base
(C<libtest-base-perl>) and libwww-perl's HTTP::Response, runs the same
C<.t> files with the same semantics for everything listed below, including
the test points each block yields, so that a plan like
C<repeat_each() * (3 * blocks())> is right under both.

The module is C<use Test::Base -Base>: C<__DATA__> blocks, C<plan>,
C<blocks>, and section filters (C<eval>, C<chomp>, ...) are Test::Base's.
The code lives in L<Test::Nginx::Util> (settings, nginx.conf, the nginx
process) and L<Test::Nginx::Socket::Engine> (requests, responses, checks).

=head2 Functions

C<run_tests>, C<repeat_each(N)>, C<no_shuffle> (blocks are shuffled
otherwise, as upstream), C<no_long_string>, C<no_diff> (Test::Base's), C<log_level('warn')>, C<master_on>,
C<master_off>, C<master_process_enabled(1)>, C<workers(N)>,
C<worker_connections(N)>, C<env_to_nginx(...)>, C<no_root_location>,
C<add_block_preprocessor(sub {...})>, C<add_cleanup_handler>,
C<server_name>, C<server_addr>, C<server_port>, C<server_port_for_client>,
C<server_root>, C<html_dir>, C<timeout>, C<bail_out>; the variables
C<$Test::Nginx::Util::ServerPort> (and C<...::ServerPortForClient>,
C<...::ServRoot>, C<...::ErrLogFile>, C<...::PidFile>).

=head2 Sections

C<config>, C<http_config>, C<main_config>, C<post_main_config>,
C<request> (C<METHOD [/uri [HTTP/1.x]]>, then the body; C<Host>,
C<Connection: close> and C<Content-Length> are added as upstream does),
C<raw_request> (a string, or an array of packets sent one by one with
C<raw_request_middle_delay> between them), C<more_headers>, C<shutdown>,
C<error_code>, C<error_code_like>, C<response_body> (a string, or a qr//
through C<eval>), C<response_body_like>, C<response_body_unlike> (regex,
C</s>), C<response_headers> (C<Name: value>, C<!Name> for absent),
C<response_headers_like> (anchored C<^value$>), C<raw_response_headers_like>,
C<raw_response_headers_unlike>, C<error_log>, C<no_error_log> (one pattern a
line, or through C<eval> a qr// or an array of strings and qr//),
C<grep_error_log> with C<grep_error_log_out>, C<timeout> (C<1.5>, C<1.5s>,
C<300ms>), C<abort>, C<wait>, C<init>, C<user_files>, C<log_level>,
C<server_name>, C<ignore_response>, C<skip_nginx> (C<N: E<lt> 1.2.3>),
and Test::Base's C<ONLY>, C<SKIP>, C<LAST>.

C<$TEST_NGINX_FOO> in C<main_config>, C<post_main_config>, C<http_config>,
C<config>, C<request>, C<raw_request>, C<more_headers>, C<user_files>,
C<response_body> and C<grep_error_log_out> is replaced by
C<$ENV{TEST_NGINX_FOO}>; an unset one stops the run with
C<No environment TEST_NGINX_FOO defined>.  C<$TEST_NGINX_SERVER_PORT> is set
from the port in use.  C<$ServerPort> in C<response_body>,
C<response_body_like> and C<response_headers> is the port.

=head2 Test points per request (as upstream)

One for the status code; one per distinct header in C<response_headers>
(or C<response_headers_like>, which is ignored when C<response_headers> is
there); one each for C<raw_response_headers_like>/C<_unlike>; one for
C<response_body> or C<response_body_like>/C<_unlike>; one per C<error_log>
and per C<no_error_log> pattern; one for C<grep_error_log_out>.  Extra
failures (that then break the plan, as upstream) come from a client
timeout without C<--- abort>, a cut chunked body, a connection that cannot
be made, a C<no_error_log> pattern matching several lines, and an
C<Assertion ... failed> line in error.log.

=head2 nginx

For every block the server root (default C<t/servroot>) gets fresh
C<conf/>, C<html/> (with upstream's C<index.html>) and C<logs/>; C<nginx.conf>
has upstream's layout: C<load_module> lines from C<TEST_NGINX_LOAD_MODULES>
first, C<worker_processes>, C<daemon on>, C<master_process off> (unless
C<master_on>), C<error_log logs/error.log debug> (or C<log_level>), C<pid>,
C<env> lines, C<main_config>, C<http { access_log; *_temp_path> inside the
server root C<; default_type text/plain; keepalive_timeout 68000ms;
http_config; server { listen PORT; server_name 'localhost';
client_max_body_size 30M; config; location / { root html; index ...} } }>,
C<events { accept_mutex off; worker_connections 64; }>, and C<user root;>
when run as root.  nginx is restarted for each block (upstream's default),
the runner waits for the pid file and the listening port (read from
C</proc/net/tcp>, so the wait adds nothing to error.log) with a deadline,
and stops nginx with QUIT (KILL after a deadline) before the next block and
at the end (unless C<TEST_NGINX_NO_CLEAN>).  A block whose nginx does not
start fails once with nginx's output and skips its other test points.

The error-log checks of a request see the lines written since the previous
request of the block (for the first, since nginx started: logs/ is fresh).

=head2 Environment

C<TEST_NGINX_BINARY> (default: C<nginx> in C<PATH>, then C</usr/sbin/nginx>),
C<TEST_NGINX_SERVER_PORT> / C<TEST_NGINX_PORT> (default 1984),
C<TEST_NGINX_CLIENT_PORT>, C<TEST_NGINX_LOAD_MODULES> (space-separated
C<.so> paths), C<TEST_NGINX_SERVROOT>, C<TEST_NGINX_NO_SHUFFLE>,
C<TEST_NGINX_NO_CLEAN>, C<TEST_NGINX_LOG_LEVEL>, C<TEST_NGINX_MASTER_PROCESS>,
C<TEST_NGINX_TIMEOUT> (default 3 s), C<TEST_NGINX_SLEEP> (default 0.015 s;
the error log is read after three of these), C<TEST_NGINX_USE_VALGRIND>,
C<TEST_NGINX_VALGRIND_SUPPRESS> (an extra suppressions file).

=head2 Valgrind

With C<TEST_NGINX_USE_VALGRIND=1> nginx runs in the foreground (C<daemon
off>, C<master_process off>) under C<valgrind --tool=memcheck
--leak-check=full>, one log per process in
C<logs/valgrind.N/vg.PID.log>, with a 60 s start deadline.  After each block
nginx is stopped and the log read: a definite leak, an invalid
read/write/free, a use of an uninitialised value or a bad syscall parameter
fails the block with one extra test point showing the valgrind records.  A
clean block adds nothing, so the plan is unchanged.  C<t/lib/valgrind.suppress>
is used when present.

=head1 DIFFERENCES FROM UPSTREAM

=over

=item * Not implemented (the run stops with a message, or the section is
ignored): several requests per block (C<request> arrays),
C<pipelined_requests>, HTTP/2 and HTTP/3, C<curl>, C<stap*>,
C<tcp_listen>/C<udp_listen> mock servers, C<must_die>,
C<shutdown_error_log>, C<access_log> checks, C<response_body_filters>,
C<charset>, C<skip_eval>, C<skip_openssl>, C<skip_slave>, C<todo>,
C<post_setup_server_root>, C<TEST_NGINX_USE_HUP>, C<TEST_NGINX_CHECK_LEAK>,
C<TEST_NGINX_BENCHMARK>, C<TEST_NGINX_RANDOMIZE>, C<TEST_NGINX_USE_STAP>,
C<TEST_NGINX_EVENT_TYPE>, C<TEST_NGINX_POSTPONE_OUTPUT>, mockeagain.

=item * nginx that fails to start fails the block (one failure, the rest
skipped) instead of retrying for 30 s and bailing out of the whole file.

=item * C<request>, C<raw_request> and C<more_headers> have their
C<$TEST_NGINX_*> variables expanded (upstream expands only pipelined
requests); a file that relies on this will not work upstream.

=item * Valgrind: nginx runs with C<master_process off> whatever
C<master_on> says, and findings fail the block (upstream only prints
valgrind's output).

=item * nginx is stopped at the end of each file (upstream too, unless
C<TEST_NGINX_NO_CLEAN>); the server root itself is never deleted.

=item * The C<env MOCKEAGAIN ...>, C<env LD_PRELOAD ...> and similar lines
of upstream's nginx.conf are left out; C<load_module> lines come first in
the file rather than at the start of C<main_config>.

=item * A block that upstream would make die while checking (e.g.
C<response_headers_like> after a cut chunked body) fails instead.

=back

=cut

use Test::Base -Base;

use Test::Nginx::Util ();
use Test::Nginx::Socket::Engine ();

our $VERSION = '0.29-gpugate';

our @EXPORT = qw(
    env_to_nginx plan run_tests run_test repeat_each worker_connections
    master_process_enabled no_long_string workers master_on
    master_off log_level no_shuffle no_root_location server_name server_addr
    server_root html_dir server_port server_port_for_client timeout
    add_block_preprocessor bail_out add_cleanup_handler
);

# Every sub here has a prototype: Spiffy's -Base filter leaves those alone.

sub run_tests () { Test::Nginx::Socket::Engine::run_tests() }
sub run_test ($) { Test::Nginx::Socket::Engine::run_block(@_) }
sub env_to_nginx (@) { Test::Nginx::Util::env_to_nginx(@_) }
sub repeat_each (@) { Test::Nginx::Util::repeat_each(@_) }
sub worker_connections (@) { Test::Nginx::Util::worker_connections(@_) }
sub master_process_enabled (@) {
    Test::Nginx::Util::master_process_enabled(@_)
}
sub no_long_string () { Test::Nginx::Util::no_long_string() }
sub workers (@) { Test::Nginx::Util::workers(@_) }
sub master_on () { Test::Nginx::Util::master_on() }
sub master_off () { Test::Nginx::Util::master_off() }
sub log_level (@) { Test::Nginx::Util::log_level(@_) }
sub no_shuffle () { Test::Nginx::Util::no_shuffle() }
sub no_root_location () { Test::Nginx::Util::no_root_location() }
sub server_name (@) { Test::Nginx::Util::server_name(@_) }
sub server_addr (@) { Test::Nginx::Util::server_addr(@_) }
sub server_root () { Test::Nginx::Util::server_root() }
sub html_dir () { Test::Nginx::Util::html_dir() }
sub server_port (@) { Test::Nginx::Util::server_port(@_) }
sub server_port_for_client (@) {
    Test::Nginx::Util::server_port_for_client(@_)
}
sub timeout (@) { Test::Nginx::Util::timeout(@_) }
sub add_block_preprocessor (&) {
    &Test::Nginx::Util::add_block_preprocessor($_[0])
}
sub add_cleanup_handler ($) { Test::Nginx::Util::add_cleanup_handler(@_) }
sub bail_out (@) { Test::Nginx::Util::bail_out(@_) }

1;
