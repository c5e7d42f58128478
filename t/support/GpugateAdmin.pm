package GpugateAdmin;

# What the admin API tests (t/090-t/093) share: scripts/gpugate-keys run
# against the suite's PostgreSQL, and admin credentials made with it.

use strict;
use warnings;

use Exporter 'import';
use File::Spec;
use File::Temp qw(tempfile);
use FindBin;

our @EXPORT_OK = qw(tool admin);

my $root = File::Spec->catdir($FindBin::Bin, '..');

# tool(ARGS): runs scripts/gpugate-keys; returns (status, stdout, stderr)
sub tool {
    my $dsn = "host=127.0.0.1 port=$ENV{TEST_NGINX_PG_PORT} user=gpugate"
              . " dbname=gpugate";
    my (undef, $out) = tempfile(UNLINK => 1);
    my (undef, $err) = tempfile(UNLINK => 1);
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open STDOUT, '>', $out or die;
        open STDERR, '>', $err or die;
        exec "$root/scripts/gpugate-keys", '--dsn', $dsn, '--timeout', 5,
             @_;
        exit 127;
    }
    waitpid $pid, 0;
    my $rc = $? >> 8;
    local $/;
    open my $o, '<', $out or die;
    open my $e, '<', $err or die;
    return ($rc, scalar(<$o>) // '', scalar(<$e>) // '');
}

# admin(NAME, ROLE): a new admin credential ("admin" or "read")
sub admin {
    my ($name, $role) = @_;
    my ($rc, $out, $err) = tool('admin-create', $name, '--role', $role);
    $rc == 0 or die "admin-create failed ($rc): $err\n";
    my ($cred) = $out =~ /^credential: (\S+)/m or die "no credential\n";
    return $cred;
}

1;
