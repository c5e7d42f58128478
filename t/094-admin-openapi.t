# The admin API's OpenAPI document (modules/admin/openapi.json, served
# beside the API) against the module's route table: every route the
# module serves is described with its method, and the document describes
# no route the module lacks.  No server needed.

use strict;
use warnings;

use FindBin;
use JSON::PP ();
use Test::More;

my $root = "$FindBin::Bin/..";

my $doc = do {
    open my $f, '<', "$root/modules/admin/openapi.json" or die "$!\n";
    local $/;
    JSON::PP->new->decode(<$f>);
};
is($doc->{openapi}, '3.1.0', 'an OpenAPI 3.1 document');
is_deeply($doc->{security}, [ { admin => [] } ],
          'every operation needs the bearer admin credential by default');

# the module's routes: family, with an id, action, method
my $src = do {
    open my $f, '<', "$root/modules/admin/ngx_http_gpugate_admin_module.c"
        or die "$!\n";
    local $/;
    <$f>;
};
my %module;
while ($src =~ /\{\s+ngx_string\("(\w+)"\),\s+
                (ngx_null_string|ngx_string\("(\w+)"\)),
                \s+(\d),\s+\d,\s+\w+,\s+NGX_HTTP_(\w+),/gx)
{
    my ($family, $action, $with_id, $method) = ($1, $3, $4, lc $5);
    my $path = "/$family" . ($with_id ? '/{id}' : '')
             . (defined $action ? "/$action" : '');
    $module{"$method $path"} = 1;
}
ok(keys %module >= 15, 'the route table was read (' . keys(%module)
   . ' routes)');

my %described;
for my $path (keys %{ $doc->{paths} }) {
    next if $path eq '/openapi.json';
    for my $m (keys %{ $doc->{paths}{$path} }) {
        next if $m eq 'parameters';
        $described{"$m $path"} = 1;
        my $op = $doc->{paths}{$path}{$m};
        ok($op->{responses}{401}, "$m $path: 401 described");
        ok($op->{responses}{403}, "$m $path: 403 described")
            unless $m eq 'get';
    }
}
is_deeply([ sort keys %described ], [ sort keys %module ],
          'the document describes exactly the module\'s routes');

done_testing();
