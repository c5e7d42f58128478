# Agent credentials: scripts/gpugate-keys stores SCRAM-SHA-256 verifiers
# (RFC 5802/7677), never the token.  The derivation is checked against RFC
# 7677's published exchange (the proof and server signature are the RFC's,
# not ours), then agent-create/list/revoke against the real database.
#
# Needs: TEST_NGINX_PG_PORT (scripts/test.sh).

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/support";

use Digest::SHA qw(hmac_sha256 sha256);
use MIME::Base64 qw(decode_base64);
use Test::More;

use GpugateTest qw(psql env_or_skip);

env_or_skip(qw(TEST_NGINX_PG_PORT));

my $keys = "$FindBin::Bin/../scripts/gpugate-keys";
$ENV{GPUGATE_PG_DSN} = "host=127.0.0.1 port=$ENV{TEST_NGINX_PG_PORT}"
                     . " user=gpugate dbname=gpugate";

# --- RFC 7677 section 3: user "user", password "pencil" -------------------

my $out = `printf 'pencil\\n' | $keys scram-verifier --salt W22ZaJ0SNY7soEsUEjb6gQ== --iterations 4096`;
my ($stored_hex, $server_hex) = $out =~ /^([0-9a-f]{64}) ([0-9a-f]{64})$/;
ok($stored_hex && $server_hex, 'scram-verifier prints two keys');

my $stored = pack 'H*', $stored_hex // '';
my $server = pack 'H*', $server_hex // '';
my $nonce = 'rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0';
my $am = "n=user,r=rOprNGfwEbeRWgbNEkqO,r=$nonce,"
       . "s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,c=biws,r=$nonce";
my $proof = decode_base64('dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=');

my $client_key = $proof ^ hmac_sha256($am, $stored);
is(unpack('H*', sha256($client_key)), $stored_hex,
   "StoredKey verifies the RFC's client proof");
is(unpack('H*', hmac_sha256($am, $server)),
   unpack('H*', decode_base64('6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=')),
   "ServerKey produces the RFC's server signature");

# --- agent-create / list / revoke -----------------------------------------

my $name = "gpu-host-$$";
$out = `$keys agent-create $name --models mock-model,other-model --region eu 2>/dev/null`;
is($?, 0, 'agent-create succeeds');
my ($token) = $out =~ /^token: (gga-[A-Za-z0-9]{48})$/m;
ok($token, 'the token is printed once, in the documented format');

my $row = psql("SELECT encode(scram_salt, 'base64'), scram_iterations,"
             . " encode(scram_stored_key, 'hex'),"
             . " encode(scram_server_key, 'hex'),"
             . " array_to_string(allowed_models, ','), region"
             . " FROM agents WHERE name = '$name'");
my ($salt, $iter, $st, $sv, $models, $region) = split /\|/, $row;
is($iter, 4096, 'iterations stored');
is("$models $region", 'mock-model,other-model eu', 'models and region');

$out = `printf '%s\\n' '$token' | $keys scram-verifier --salt '$salt' --iterations $iter`;
is($out, "$st $sv\n", 'the stored verifier belongs to the printed token');

my $dump = psql("SELECT row_to_json(a)::text FROM agents a"
              . " WHERE name = '$name'");
unlike($dump, qr/\Q$token\E/, 'the token itself is stored nowhere');

like(`$keys agent-list`, qr/\Q$name\E/, 'agent-list shows the agent');

is(system("$keys agent-revoke $name >/dev/null"), 0, 'agent-revoke');
ok(psql("SELECT revoked_at IS NOT NULL FROM agents WHERE name = '$name'")
   eq 't', 'revoked_at is set');

isnt(system("$keys agent-create 'bad name' >/dev/null 2>&1"), 0,
     'an invalid agent name is refused');

done_testing();
