# scripts/run.sh as a new user starts it: the demo must not teach an
# insecure production layout.  nginx logs in to PostgreSQL as a
# least-privilege role that can read keys and agents and append usage
# rows but can neither mint keys, nor un-revoke agents, nor rewrite the
# ledger; PostgreSQL refuses TCP logins without a password; every secret
# (passfiles, the admin key, agent tokens, the generated nginx.conf that
# names the admin key) is a 0600 file; the ledger's spill directory is
# the workers' and writable by them, and rows written through the
# stack reach PostgreSQL.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/support";

use File::Temp qw(tempdir);
use POSIX qw(WNOHANG);
use Test::More;
use Time::HiRes qw(sleep time);

use GpugateTest qw(free_port http_request wait_until env_or_skip);

env_or_skip(qw(TEST_NGINX_LOAD_MODULES));

my $root = "$FindBin::Bin/..";
my $dir = tempdir('gpugate-run-XXXXXX', TMPDIR => 1, CLEANUP => 1);
chmod 0755, $dir;
my $state = "$dir/state";
my $port = free_port();
my $out = "$dir/run.out";

my $pid = fork // die "fork: $!\n";
if ($pid == 0) {
    open STDOUT, '>', $out or die;
    open STDERR, '>&', \*STDOUT or die;
    setpgrp(0, 0);
    exec "$root/scripts/run.sh", '--no-deps', '--port', $port,
        '--state', $state, '--workers', 2
        or die "exec: $!\n";
}

sub slurp {
    my ($f) = @_;
    open my $fh, '<', $f or return '';
    local $/;
    return scalar <$fh>;
}

my $up = wait_until(120, sub {
    return 1 if slurp($out) =~ /^Press Ctrl-C/m;
    return 0 if waitpid($pid, WNOHANG) == $pid;
    return;
});
ok($up, 'run.sh started the stack') or diag(slurp($out));

END {
    local $?;
    if ($pid) {
        kill 'TERM', $pid;
        my $deadline = time + 30;
        while (time < $deadline && waitpid($pid, WNOHANG) != $pid) {
            sleep 0.1;
        }
        kill 'KILL', -$pid if waitpid($pid, WNOHANG) != $pid;
    }
}

my $text = slurp($out);
my ($key) = $text =~ /^GPUGATE_API_KEY=(\S+)/m;
my ($dsn) = $text =~ /^GPUGATE_PG_DSN='([^']+)'/m;
my ($redis) = $text =~ /^GPUGATE_REDIS=(\S+)/m;
ok($key && $dsn && $redis, 'key, PostgreSQL DSN and Redis lines printed');
my ($pg_port) = ($dsn || '') =~ /port=(\d+)/;

# psql(DSN, SQL): (exit status, output); never dies
sub psql_as {
    my ($conninfo, $sql) = @_;
    local $ENV{PGPASSFILE} = '/nonexistent';
    my $o = `psql -X -At -v ON_ERROR_STOP=1 '$conninfo' -c "$sql" 2>&1`;
    return ($? >> 8, $o);
}

# the chat path works through the whole stack
my $body = '{"model":"mock-model","messages":[{"role":"user","content":"hi"}]}';
for my $i (1 .. 3) {
    my $r = http_request($port, 'POST', '/v1/chat/completions',
        { Authorization => "Bearer $key",
          'Content-Type' => 'application/json' }, $body);
    is($r->{status}, 200, "request $i through run.sh's stack");
}

# file modes: the secrets and the config naming the admin key
for my $f ("$state/nginx/conf/nginx.conf", "$state/secrets/pgpass",
           "$state/secrets/admin.key", "$state/run-agent-1.token")
{
    my @st = stat $f;
    ok(@st && ($st[2] & 07777) == 0600, "$f is 0600")
        or diag(sprintf '%s mode %o', $f, @st ? $st[2] & 07777 : 0);
}

my $conf = slurp("$state/nginx/conf/nginx.conf");
my ($nginx_dsn) = $conf =~ /gpugate_auth_postgres "([^"]+)"/;
ok($nginx_dsn && $nginx_dsn =~ /user=gpugate_nginx\b/,
   'nginx logs in as gpugate_nginx') or diag($nginx_dsn);
unlike($conf, qr/user=gpugate\s/, 'nginx never logs in as the owner');
my ($passfile) = ($nginx_dsn || '') =~ /passfile=(\S+)/;
my @pst = stat($passfile || '/nonexistent');
ok(@pst && ($pst[2] & 07777) == 0600, "nginx's passfile is 0600");

# PostgreSQL: no password, no login (TCP); the owner's DSN works
my ($rc, $o) = psql_as("host=127.0.0.1 port=$pg_port user=gpugate "
    . "dbname=gpugate", 'SELECT 1');
isnt($rc, 0, 'a TCP login without password is refused');
like($o, qr/password/, '... for want of a password');
($rc, $o) = psql_as($dsn, 'SELECT rolsuper FROM pg_roles '
    . "WHERE rolname = 'gpugate_nginx'");
is($o, "f\n", 'the printed DSN logs in; gpugate_nginx is no superuser');

# the workers' connections, and what that role may not do
ok(wait_until(20, sub {
    my (undef, $u) = psql_as($dsn, "SELECT DISTINCT usename FROM "
        . "pg_stat_activity WHERE backend_type = 'client backend' "
        . "AND usename <> 'gpugate'");
    return $u eq "gpugate_nginx\n";
}), 'the gateway is connected as gpugate_nginx only');

for my $sql (
    "INSERT INTO tenants (name) VALUES ('evil')",
    "UPDATE api_keys SET revoked_at = NULL",
    "UPDATE agents SET revoked_at = NULL",
    "DELETE FROM usage_events",
    "UPDATE usage_events SET prompt_tokens = 0",
    "CREATE TABLE evil (x int)",
)
{
    my ($r, $m) = psql_as($nginx_dsn, $sql);
    isnt($r, 0, "gpugate_nginx may not: $sql");
    like($m, qr/permission denied/, '... permission denied');
}
($rc, $o) = psql_as($nginx_dsn, 'SELECT count(*) FROM api_keys');
is($rc, 0, 'gpugate_nginx reads api_keys');

# the ledger's rows arrive, and the spill directory is the workers'
ok(wait_until(20, sub {
    my (undef, $n) = psql_as($dsn, 'SELECT count(*) FROM usage_events '
        . "WHERE endpoint LIKE '%chat%'");
    return $n >= 3;
}), 'ledger rows written by gpugate_nginx');

my ($spill) = $conf =~ /spill=(\S+?);?\s/;
ok($spill && -d $spill, 'spill directory exists');
my $user = $> == 0 ? 'nobody' : getpwuid($>);
is(system('runuser', '-u', $user, '--', 'sh', '-c',
          "touch '$spill/.w' && rm '$spill/.w'"), 0,
   "spill directory writable by the worker user ($user)")
    if $> == 0;

done_testing();
