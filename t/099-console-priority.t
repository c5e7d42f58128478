# The console edits keys' and tenants' priority, max_priority and region
# (issue 19; the admin API's fields of sql/009): headless chromium over
# the DevTools protocol (t/support/GpugateCdp.pm), the console locations
# of conf/nginx.conf.in.  A key's Edit form sets them (read back through
# the admin API and shown in the key table), empty fields unset them
# (inherited); a tenant's too; the create form takes them; a value the
# API refuses (priority 12, "high", a region with markup) shows the API's
# own message and changes nothing, the markup staying text.  No script
# error, no dialog.  Skipped without chromium (GPUGATE_CHROMIUM=PATH).

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/support";

use File::Temp qw(tempdir);
use JSON::PP ();
use Test::More;

use GpugateAdmin qw(admin);
use GpugateCdp qw(cdp_start cdp_stop cdp cdp_drain_events js js_until);
use GpugateTest qw(start_nginx http_request psql env_or_skip make_key);

env_or_skip(qw(TEST_NGINX_LOAD_MODULES TEST_NGINX_PG_PORT
               TEST_NGINX_REDIS_PORT));

my $chromium = $ENV{GPUGATE_CHROMIUM}
    || (grep { -x } '/usr/bin/chromium', '/usr/bin/chromium-browser')[0];
plan skip_all => 'no chromium (apt-get install chromium, or set '
               . 'GPUGATE_CHROMIUM)' unless $chromium && -x $chromium;

my $pg = $ENV{TEST_NGINX_PG_PORT};
my $rd = $ENV{TEST_NGINX_REDIS_PORT};
my $root = "$FindBin::Bin/..";
my $json = JSON::PP->new->utf8->canonical;
my $dir = tempdir('gpugate-console-prio-XXXXXX', TMPDIR => 1,
                  CLEANUP => !$ENV{GPUGATE_KEEP_TMP});
my $run = sprintf '%x%x', $$, time;
my $evil = '<img src=x onerror=alert(1)>';

# the console's locations as run.sh ships them
my $conf = do {
    open my $f, '<', "$root/conf/nginx.conf.in" or die "nginx.conf.in: $!";
    local $/;
    <$f>;
};
my $locations = join "\n", $conf =~
    /^(        location (?:=\s)?\/console\/\S* \{\n.*?^        \})$/gms;
$locations =~ s{\@WORKER_DIR\@/console/}{$root/modules/admin/console/}g;

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

my $cred = admin("cprio-$run", 'admin');
my $tenant = "cprio-$run";
my (undef, $kid) = make_key($tenant, name => 'prio');
my $tid = psql("SELECT id FROM tenants WHERE name = '$tenant'");

sub api_get {
    my ($path) = @_;
    my $r = http_request($port, 'GET', "/admin/v1/$path",
                         { Authorization => "Bearer $cred" }, '', 10);
    return eval { $json->decode($r->{body}) } || {};
}

sub prio_of {
    my ($x) = @_;
    return join ' ', map { $x->{$_} // 'null' }
                     qw(priority max_priority region);
}

my $c = cdp_start($chromium, $dir);
ok($c, 'chromium started headless')
    or die 'no DevTools: ' . `tail -5 $dir/chromium.log`;

cdp($c, 'Page.navigate', { url => "http://127.0.0.1:$port/console/" });
ok(js_until($c, 10, "!!document.getElementById('login')"
                  . " && !document.getElementById('login').hidden"),
   'the console shows its login form');
js($c, "document.getElementById('cred').value = " . $json->encode($cred)
     . "; document.getElementById('login-form').requestSubmit(); 1");

my $row = "#keys tr[data-key=\"$kid\"]";
ok(js_until($c, 15, "!!document.querySelector('$row')"),
   'the key is in the key table');
is(js($c, "document.querySelector('$row td.prio').textContent"),
   'inherited', 'without settings: "inherited"');

# edit(ROW, PRIORITY, MAX, REGION): the row's Edit form filled and saved
sub edit {
    my ($sel, @v) = @_;
    js($c, "document.querySelector('$sel button.edit').click(); 1");
    js_until($c, 5, "!document.getElementById('prio-edit').hidden")
        or return 0;
    js($c, "(function () { var v = " . $json->encode(\@v) . ";"
         . " document.getElementById('prio-priority').value = v[0];"
         . " document.getElementById('prio-max').value = v[1];"
         . " document.getElementById('prio-region').value = v[2];"
         . " document.getElementById('prio-form').requestSubmit();"
         . " return 1; })()");
    return 1;
}

# --- a key: set, shown, read back ---------------------------------------

ok(edit($row, '3', '7', 'eu-west.2'), 'the key\'s Edit form opens');
ok(js_until($c, 10, "document.getElementById('prio-edit').hidden"),
   'saved: the form closes')
    or diag js($c, "document.getElementById('prio-error').textContent");
is(prio_of(api_get("keys/$kid")), '3 7 eu-west.2',
   'the admin API has priority 3, max 7, region eu-west.2');
ok(js_until($c, 10, "document.querySelector('$row td.prio').textContent"
                  . " === 'priority 3, max 7, region eu-west.2'"),
   'and the key table shows them');

# the form opens with the values it has
js($c, "document.querySelector('$row button.edit').click(); 1");
is(js($c, "['prio-priority', 'prio-max', 'prio-region'].map(function (i) {"
        . " return document.getElementById(i).value; }).join(' ')"),
   '3 7 eu-west.2', 'the Edit form is filled with them');
js($c, "document.getElementById('prio-cancel').click(); 1");

# --- refused values: the API's message, nothing changed ------------------

my @bad = (
    [ [ '12', '', '' ], qr/priority must be a whole number 0 \(lowest\) to 9/,
      'priority 12' ],
    [ [ 'high', '', '' ], qr/priority must be a whole number/,
      'priority "high"' ],
    [ [ '', '-1', '' ], qr/max_priority must be a whole number/,
      'max priority -1' ],
    [ [ '', '', $evil ], qr/region must be 1-31 of letters/,
      'a region with markup' ],
);
for my $b (@bad) {
    my ($v, $re, $name) = @$b;
    edit($row, @$v);
    ok(js_until($c, 10, "document.getElementById('prio-error').textContent"
                      . ".length > 0"), "$name: an error is shown");
    like(js($c, "document.getElementById('prio-error').textContent"), $re,
         "$name: the API's own message");
    ok(!js($c, "document.getElementById('prio-edit').hidden"),
       "$name: the form stays open");
    is(prio_of(api_get("keys/$kid")), '3 7 eu-west.2',
       "$name: nothing changed");
    js($c, "document.getElementById('prio-cancel').click(); 1");
}
is(js($c, "document.querySelectorAll('img').length"), 0,
   'the markup made no element');

# --- empty fields: inherited again ----------------------------------------

edit($row, '', '', '');
ok(js_until($c, 10, "document.getElementById('prio-edit').hidden"),
   'empty fields saved');
is(prio_of(api_get("keys/$kid")), 'null null null',
   'the admin API has them unset');
ok(js_until($c, 10, "document.querySelector('$row td.prio').textContent"
                  . " === 'inherited'"), 'the table says inherited');

# --- a tenant ---------------------------------------------------------------

my $trow = "#tenants tr[data-tenant=\"$tid\"]";
ok(js_until($c, 10, "!!document.querySelector('$trow')"),
   'the tenant is in the tenant table');
edit($trow, '1', '4', 'us-east');
ok(js_until($c, 10, "document.getElementById('prio-edit').hidden"),
   'the tenant\'s form saved')
    or diag js($c, "document.getElementById('prio-error').textContent");
is(prio_of(api_get("tenants/$tid")), '1 4 us-east',
   'the admin API has the tenant\'s priority 1, max 4, region us-east');
ok(js_until($c, 10, "document.querySelector('$trow td.prio').textContent"
                  . " === 'priority 1, max 4, region us-east'"),
   'and the tenant table shows them');

# --- the create form ----------------------------------------------------------

sub create {
    my (@v) = @_;
    js($c, "(function () { var v = " . $json->encode(\@v) . ";"
         . " document.getElementById('key-tenant').value = "
         . $json->encode($tenant) . ";"
         . " document.getElementById('key-name').value = v[0];"
         . " document.getElementById('key-priority').value = v[1];"
         . " document.getElementById('key-max-priority').value = v[2];"
         . " document.getElementById('key-region').value = v[3];"
         . " document.getElementById('key-form').requestSubmit();"
         . " return 1; })()");
}

create("made-$run", '4', '6', 'ap-south');
ok(js_until($c, 10, "!document.getElementById('new-key').hidden"),
   'create key: the new key is shown');
my $key = js($c, "document.getElementById('new-key-value').textContent");
my $nid = psql("SELECT id FROM api_keys WHERE prefix = '"
               . substr($key, 0, 12) . "'");
is(prio_of(api_get("keys/$nid")), '4 6 ap-south',
   'created with priority 4, max 6, region ap-south');
js($c, "document.getElementById('new-key-close').click(); 1");

my $before = psql("SELECT count(*) FROM api_keys WHERE name = 'bad-$run'");
create("bad-$run", '10', '', '');
ok(js_until($c, 10, "document.getElementById('dash-error').textContent"
                  . ".indexOf('priority must be a whole number') >= 0"),
   'create with priority 10: the API\'s message is shown');
is(psql("SELECT count(*) FROM api_keys WHERE name = 'bad-$run'"), $before,
   'and no key was made');

# a refusal stays shown after the polls in flight when it came end (one
# ending a moment after it wiped it: t/099 under load).  The console's GETs
# (its polls) are answered a second late and counted, so that one is in
# flight when the create, a POST, is refused.
js($c, "(function () { var f = window.fetch; window.ggGets = 0;"
     . " window.fetch = function (u, o) { var p = f.call(window, u, o);"
     . " if (o && o.method !== 'GET') { return p; }"
     . " window.ggGets++;"
     . " return p.then(function (r) { return new Promise(function (ok) {"
     . " setTimeout(function () { window.ggGets--; ok(r); }, 1000); }); });"
     . " }; return 1; })()");
ok(js_until($c, 10, "window.ggGets > 0"), 'a poll is in flight');
my $polls = js($c, "document.body.getAttribute('data-polls')");
create("bad2-$run", '10', '', '');
ok(js_until($c, 10, "document.getElementById('dash-error').textContent"
                  . ".indexOf('priority must be a whole number') >= 0"),
   'refused while a poll is in flight: the message is shown');
ok(js_until($c, 20, "+document.body.getAttribute('data-polls') > $polls"),
   'that poll ended');
like(js($c, "document.getElementById('dash-error').textContent"),
     qr/priority must be a whole number/,
     '... and the message is still shown');

cdp_drain_events($c);
is_deeply($c->{alerts}, [], 'no alert or other dialog');
is_deeply([ grep { !/status of 400/ } @{ $c->{errors} } ], [],
          'no script error, no CSP violation (only the refusals\' 400s)');

cdp_stop($c);

done_testing();
