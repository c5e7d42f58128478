# The operator console's protections (issue 20), with the console
# locations of conf/nginx.conf.in as run.sh ships them: the static files
# carry a strict Content-Security-Policy (default-src 'self', no inline
# script, no eval, frame-ancestors 'none'), nosniff and the right types;
# the files hold no inline script, handler or javascript: URL and insert
# no markup; /console/status and /console/metrics answer only to an admin
# credential (read or admin: auth_request asks GET /admin/v1/whoami), the
# admin API only to one too; a POST without a body, as browsers send it
# (Content-Length: 0), is read as an empty body.
#
# Needs (scripts/test.sh exports them): TEST_NGINX_LOAD_MODULES,
# TEST_NGINX_PG_PORT, TEST_NGINX_REDIS_PORT.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/support";

use IO::Socket::INET;
use JSON::PP ();
use Test::More;

use GpugateAdmin qw(admin);
use GpugateTest qw(start_nginx http_request http_read psql env_or_skip);

my $root = "$FindBin::Bin/..";
my $dir = "$root/modules/admin/console";

sub slurp {
    open my $f, '<', $_[0] or die "$_[0]: $!\n";
    local $/;
    return <$f>;
}

# --- the files (no server needed) -------------------------------------------

my %file = map { $_ => slurp("$dir/$_") } qw(index.html app.js app.css);

{
    my $html = $file{'index.html'};
    my @scripts = $html =~ /<script\b([^>]*)>(.*?)<\/script>/gis;
    my $n = @scripts / 2;
    is($n, 1, 'index.html has one script element');
    like($scripts[0] // '', qr/\bsrc="app\.js"/, 'which loads app.js');
    is($scripts[1] // '', '', 'and holds no inline code');
    unlike($html, qr/\son[a-z]+\s*=/i, 'no inline event handler');
    unlike($html, qr/javascript:/i, 'no javascript: URL');
    unlike($html, qr/<style\b|\sstyle\s*=/i, 'no inline style');
    unlike($html, qr/(?:src|href)="(?:https?:)?\/\//i,
           'nothing from another origin (no CDN)');
}

{
    my $js = $file{'app.js'};
    for my $bad (qr/\binnerHTML\b/, qr/\bouterHTML\b/,
                 qr/\binsertAdjacentHTML\b/, qr/\bdocument\.write\b/,
                 qr/\beval\s*\(/, qr/\bnew\s+Function\b/,
                 qr/\bsetTimeout\s*\(\s*['"]/, qr/\blocalStorage\b/,
                 qr/\bdocument\.cookie\b/)
    {
        unlike($js, $bad, "app.js does not use $bad");
    }
    like($js, qr/sessionStorage/, 'the credential lives in sessionStorage');
    like($js, qr/credentials: 'omit'/, 'fetch() sends no cookie');
    like($js, qr/'Authorization': 'Bearer '/, 'but the bearer credential');
    unlike($file{'app.css'}, qr/url\(\s*['"]?(?:https?:)?\/\//i,
           'app.css loads nothing from another origin');
}

# --- the locations run.sh serves ---------------------------------------------

env_or_skip(qw(TEST_NGINX_LOAD_MODULES TEST_NGINX_PG_PORT
               TEST_NGINX_REDIS_PORT));

my $pg = $ENV{TEST_NGINX_PG_PORT};
my $rd = $ENV{TEST_NGINX_REDIS_PORT};

my $conf = slurp("$root/conf/nginx.conf.in");
my @blocks = $conf =~ /^(        location (?:=\s)?\/console\/\S* \{\n.*?^        \})$/gms;
is(scalar @blocks, 3, 'conf/nginx.conf.in has the console\'s three locations');
my $locations = join "\n", @blocks;
$locations =~ s{\@WORKER_DIR\@/console/}{$dir/}g;
unlike($locations, qr/\@[A-Z_]+\@/, 'with no other placeholder');

my $ng = start_nginx(http => <<"HTTP", server => <<"SRV");
    gpugate_auth_postgres "host=127.0.0.1 port=$pg user=gpugate dbname=gpugate";
    gpugate_auth_redis 127.0.0.1:$rd timeout=1s;
HTTP
        location /admin/v1/ {
            gpugate_admin;
        }
$locations
SRV
my $port = $ng->port;

my $run = sprintf '%x%x', $$, time;
my $read = admin("csec-ro-$run", 'read');
my $root_cred = admin("csec-$run", 'admin');

my %type = ('' => 'text/html', 'index.html' => 'text/html',
            'app.js' => 'application/javascript', 'app.css' => 'text/css');
for my $f (sort keys %type) {
    my $r = http_request($port, 'GET', "/console/$f", {}, '');
    is($r->{status}, 200, "GET /console/$f: 200");
    like($r->{headers}{'content-type'} // '', qr/^\Q$type{$f}\E\b/,
         "as $type{$f}");
    my $csp = $r->{headers}{'content-security-policy'} // '';
    like($csp, qr/(?:^|; )default-src 'self'(?:;|$)/, 'CSP default-src self');
    like($csp, qr/(?:^|; )script-src 'self'(?:;|$)/,
         'scripts from the console only: no inline, no eval');
    unlike($csp, qr/unsafe-inline|unsafe-eval|\*/, 'nothing unsafe');
    like($csp, qr/frame-ancestors 'none'/, 'no framing (CSP)');
    is($r->{headers}{'x-frame-options'}, 'DENY', 'no framing (old browsers)');
    is($r->{headers}{'x-content-type-options'}, 'nosniff', 'nosniff');
    ok(!exists $r->{headers}{'set-cookie'}, 'no cookie');
}

# --- data only with a credential ----------------------------------------------

for my $path ('/console/status', '/console/metrics', '/admin/v1/agents',
              '/admin/v1/keys', '/admin/v1/whoami')
{
    my $r = http_request($port, 'GET', $path, {}, '', 10);
    is($r->{status}, 401, "GET $path without a credential: 401");
    unlike($r->{body}, qr/"agents"|gpugate_|sk-gg-/,
           'and none of its data');
    $r = http_request($port, 'GET', $path,
                      { Authorization => 'Bearer gg-admin-nonsense' }, '', 10);
    is($r->{status}, 401, "GET $path with an unknown credential: 401");
    $r = http_request($port, 'GET', $path,
                      { Authorization => "Bearer $read" }, '', 10);
    is($r->{status}, 200, "GET $path with a read-only credential: 200");
}
{
    my $r = http_request($port, 'GET', '/console/status',
                         { Authorization => "Bearer $read" }, '', 10);
    ok(eval { JSON::PP->new->decode($r->{body})->{tunnel} || 1 },
       '/console/status is the status JSON');
    $r = http_request($port, 'GET', '/console/metrics',
                      { Authorization => "Bearer $read" }, '', 10);
    like($r->{body}, qr/^# TYPE gpugate_/m, '/console/metrics is Prometheus');
}

# --- a POST without a body (Content-Length: 0), as browsers send it ----------

my $aid = psql("INSERT INTO agents (name, scram_salt, scram_iterations,"
    . " scram_stored_key, scram_server_key) VALUES ('csec-$run',"
    . " decode(repeat('00', 16), 'hex'), 4096, decode(repeat('00', 32), 'hex'),"
    . " decode(repeat('00', 32), 'hex')) RETURNING id");
for my $route ("agents/$aid/drain", 'keys') {
    my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port",
                                  Timeout => 5) or die "connect: $!\n";
    print $s "POST /admin/v1/$route HTTP/1.1\r\nHost: localhost\r\n"
           . "Authorization: Bearer $root_cred\r\nContent-Length: 0\r\n"
           . "Connection: close\r\n\r\n";
    my $r = http_read($s, 10);
    isnt($r->{status}, 413, "POST $route with Content-Length: 0: not 413");
}
is(psql("SELECT drained_at IS NOT NULL FROM agents WHERE id = $aid"), 't',
   'the bodiless drain was made');

done_testing();
