# The admin API in scripts/run.sh's stack: GPUGATE_ADMIN_KEY printed and
# kept in a 0600 file, /admin/v1/ served with nginx logged in to
# PostgreSQL as the least-privilege gpugate_nginx (the API's functions
# are all it may call: no table of admins, keys or audit rows is its to
# read or write), the demo agent listed as connected, a key created,
# used and revoked through the API, the OpenAPI document served beside
# it.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/support";

use File::Temp qw(tempdir);
use POSIX qw(WNOHANG);
use Test::More;
use Time::HiRes qw(sleep time);

use JSON::PP ();
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
my ($admin) = $text =~ /^GPUGATE_ADMIN_KEY=(\S+)/m;
like($admin // '', qr/^gg-admin-[A-Za-z0-9]{40}$/,
     'run.sh prints GPUGATE_ADMIN_KEY');
my ($pg_port) = ($dsn || '') =~ /port=(\d+)/;

# psql(DSN, SQL): (exit status, output); never dies
sub psql_as {
    my ($conninfo, $sql) = @_;
    local $ENV{PGPASSFILE} = '/nonexistent';
    my $o = `psql -X -At -v ON_ERROR_STOP=1 '$conninfo' -c "$sql" 2>&1`;
    return ($? >> 8, $o);
}

my $json = JSON::PP->new->utf8->canonical;

# api(METHOD, PATH, BODY): (status, decoded JSON)
sub api {
    my ($method, $path, $body) = @_;
    my %h = (Authorization => "Bearer $admin");
    $h{'Content-Type'} = 'application/json' if defined $body;
    my $r = http_request($port, $method, "/admin/v1/$path", \%h, $body);
    return ($r->{status}, eval { $json->decode($r->{body}) });
}

my @st = stat "$state/secrets/admin-api.key";
ok(@st && ($st[2] & 07777) == 0600, 'the admin credential file is 0600');
is(slurp("$state/secrets/admin-api.key"), "$admin\n",
   'and holds the printed credential');

my ($s, $doc) = api('GET', 'agents');
is($s, 200, 'GET /admin/v1/agents with GPUGATE_ADMIN_KEY');
my ($ag) = grep { $_->{name} eq 'run-agent-1' } @{ $doc->{data} || [] };
ok($ag && $ag->{connected}, 'the demo agent is listed as connected');

($s, $doc) = api('POST', 'keys', '{"tenant":"demo","name":"via api"}');
is($s, 201, 'POST /admin/v1/keys');
my ($k, $kid) = @$doc{qw(key id)};
my $body = '{"model":"mock-model","messages":[{"role":"user","content":"hi"}]}';
my $chat = sub {
    return http_request($port, 'POST', '/v1/chat/completions',
        { Authorization => "Bearer $k",
          'Content-Type' => 'application/json' }, $body)->{status};
};
is($chat->(), 200, 'the new key works through the stack');
($s) = api('DELETE', "keys/$kid");
is($s, 200, 'DELETE /admin/v1/keys/{id}');
ok(wait_until(5, sub { $chat->() == 401 }), 'the revoked key is refused');

my $r = http_request($port, 'GET', '/admin/v1/openapi.json', {}, '');
is($r->{status}, 200, 'the OpenAPI document is served');
is((eval { $json->decode($r->{body}) } || {})->{openapi}, '3.1.0',
   'as JSON');
is(http_request($port, 'GET', '/admin/v1/keys', {}, '')->{status}, 401,
   'the API itself needs the credential');

# the gateway's role: the functions, nothing else
my $conf = slurp("$state/nginx/conf/nginx.conf");
my ($nginx_dsn) = $conf =~ /gpugate_auth_postgres "([^"]+)"/;
my ($rc, $o) = psql_as($nginx_dsn, "SELECT status FROM"
    . " gpugate_admin_keys_create(sha256('x'), 'test', '', '{}')");
is("$rc $o", "0 401\n",
   'gpugate_nginx may call the API\'s functions; a bad credential is 401');
for my $sql ("SELECT * FROM admins", "SELECT * FROM admin_audit",
             "INSERT INTO admins (name, digest, prefix, role) VALUES"
             . " ('evil', sha256('x'), 'gg-admin-x', 'admin')",
             "DELETE FROM admin_audit",
             "SELECT * FROM gpugate_admin_who(sha256('x'), true)")
{
    ($rc, $o) = psql_as($nginx_dsn, $sql);
    isnt($rc, 0, "gpugate_nginx may not: $sql");
    like($o, qr/permission denied/, '... permission denied');
}

done_testing();
