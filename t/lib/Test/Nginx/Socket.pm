package Test::Nginx::Socket;

# gpugate's runner for .t files written for upstream Test::Nginx::Socket,
# used only when upstream Test::Nginx (CPAN) is not installed: see
# Test::Nginx::Socket::Lite for the implementation, supported sections and
# the differences from upstream.  This file only gives the module its
# upstream name and Test::Base interface (blocks, plan, filters, ...).

use Test::Base -Base;

use Test::Nginx::Socket::Lite ();

our $VERSION = '0.01-gpugate';

our $ServerPort = Test::Nginx::Socket::Lite::server_port();
our $ServerPortForClient = $ServerPort;

our @EXPORT = qw(
    run_tests repeat_each no_shuffle add_block_preprocessor log_level
    master_on master_process_enabled workers worker_connections
    env_to_nginx no_root_location no_long_string server_port html_dir
    server_root $ServerPort $ServerPortForClient
);

sub run_tests () { Test::Nginx::Socket::Lite::run_tests() }
sub repeat_each (@) { Test::Nginx::Socket::Lite::repeat_each(@_) }
sub no_shuffle () { Test::Nginx::Socket::Lite::no_shuffle() }
sub add_block_preprocessor (&) {
    Test::Nginx::Socket::Lite::add_block_preprocessor(@_)
}
sub log_level (@) { Test::Nginx::Socket::Lite::log_level(@_) }
sub master_on () { Test::Nginx::Socket::Lite::master_process_enabled(1) }
sub master_process_enabled (@) {
    Test::Nginx::Socket::Lite::master_process_enabled(@_)
}
sub workers (@) { Test::Nginx::Socket::Lite::workers(@_) }
sub worker_connections (@) {
    Test::Nginx::Socket::Lite::worker_connections(@_)
}
sub env_to_nginx (@) { Test::Nginx::Socket::Lite::env_to_nginx(@_) }
sub no_root_location () { Test::Nginx::Socket::Lite::no_root_location() }
sub no_long_string () { 1 }
sub server_port () { Test::Nginx::Socket::Lite::server_port() }
sub html_dir () { Test::Nginx::Socket::Lite::html_dir() }
sub server_root () { Test::Nginx::Socket::Lite::server_root() }

1;
