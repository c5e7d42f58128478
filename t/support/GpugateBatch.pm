package GpugateBatch;

# What the batch tests (t/105-t/109, t/114) share: a gateway node with the batch
# API and its runner (gpugate_batch pointing at the node's own port), a
# tunnel door and /v1/ through its agents, on the suite's PostgreSQL and
# Redis; the multipart upload of a JSONL file; JSON API calls.

use strict;
use warnings;

use Exporter qw(import);
use File::Temp qw(tempdir);
use JSON::PP ();

use GpugateTest qw(start_nginx http_request free_port psql);
use GpugateScale qw(ADMIN);

our @EXPORT_OK = qw(batch_node upload api jsonl kill_node batch_mark
                    batch_trail);

my $json = JSON::PP->new->utf8->canonical;
my $dir = tempdir('gpugate-batch-XXXXXX', TMPDIR => 1,
                  CLEANUP => !$ENV{GPUGATE_KEEP_TMP});
my $n_zone = 0;

# The lane's PostgreSQL outlives its test files, and a runner claims any
# pending line of it: a job an earlier file made on a node without a
# runner, or a batch it did not wait for, would run on this file's node
# and be counted as its own (t/104 once saw another file's job reach its
# mock as a second request).  The batches there before this file began:
my $first_seq = $ENV{TEST_NGINX_PG_PORT}
    ? eval { psql('SELECT coalesce(max(seq), 0) FROM batches') } : undef;
my $settled;

# their unfinished lines end as cancelled, once, before this file's first
# runner starts; its own lines are not touched (a test may make a batch
# before a node that runs it)
sub settle_earlier {
    return if $settled || !defined $first_seq || $first_seq !~ /^\d+$/;
    $settled = 1;
    psql("UPDATE batch_lines SET status = 'cancelled', finished_at = now(),"
         . " lease_owner = NULL, lease_until = NULL"
         . " WHERE status IN ('pending', 'running') AND bseq <= $first_seq");
}

# batch_node(name => N, port => P, runner => 'concurrency=4 ...',
# max_body => '8m', model => 'mock-model pool=agents ...', admin => 1,
# queue => 64): a node; without "runner" no gpugate_batch line; "admin"
# adds the admin API at /admin/v1/; "queue": the tunnel's wait queue per
# worker.
sub batch_node {
    my (%o) = @_;
    my $pg = $ENV{TEST_NGINX_PG_PORT};
    my $rd = $ENV{TEST_NGINX_REDIS_PORT};
    my $dsn = "host=127.0.0.1 port=$pg user=gpugate dbname=gpugate "
            . "connect_timeout=2";
    my $port = $o{port} || free_port();
    my $zone = "batch" . $n_zone++ . "_$$";
    my $spill = "$dir/spill-$o{name}-$n_zone";
    mkdir $spill;
    chmod 0777, $spill;
    settle_earlier() if defined $o{runner};
    my $runner = defined $o{runner}
        ? "    gpugate_batch 127.0.0.1:$port $o{runner};\n" : '';
    my $max = $o{max_body} || '8m';
    my $model = $o{model} || 'mock-model pool=agents';
    my $admin = ADMIN;
    my $admin_api = $o{admin}
        ? "        location /admin/v1/ { gpugate_admin; }\n" : '';
    my $queue = $o{queue} || 64;
    my $ng = start_nginx(workers => $o{workers} || 2, port => $port,
                         http => <<"HTTP",
    gpugate_auth_zone zone=$zone:1m ttl=60s negative_ttl=5s stale=300s;
    gpugate_auth_postgres "$dsn" timeout=5s;
    gpugate_auth_redis 127.0.0.1:$rd timeout=1s;
    gpugate_usage_ledger "$dsn" gateway=$o{name} batch=10 interval=200ms
                         spill=$spill exit_timeout=3s;
$runner    upstream agents {
        gpugate_tunnel queue=$queue queue_timeout=5s;
    }
HTTP
        server => <<"SRV");
        location = /gpugate/tunnel {
            gpugate_tunnel_accept ping=1s ping_timeout=2s;
        }
        location /v1/ {
            gpugate_auth on;
            gpugate_openai on;
            gpugate_accounting on;
            gpugate_model $model;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Authorization "";
            proxy_pass http://\$gpugate_pool;
            error_page 502 503 504 \@err;
        }
        location ~ ^/v1/(files|batches|jobs)(/|\$) {
            gpugate_auth on;
            client_max_body_size $max;
            client_body_buffer_size 64k;
            gpugate_batch_api;
            error_page 413 \@err;
        }
        location \@err { gpugate_error; }
        location = /status { gpugate_status admin_key=$admin; }
$admin_api
SRV
    $ng->{name} = $o{name};
    return $ng;
}

# kill_node(NODE): kill -9 of its master and workers, as a crash; the
# object then has no master to stop at the end
sub kill_node {
    my ($ng) = @_;
    my $master = $ng->pid or return;
    my @w;
    for my $stat (glob '/proc/[0-9]*/stat') {
        open my $fh, '<', $stat or next;
        my $line = <$fh> // next;
        my ($pid, $ppid) = $line =~ /^(\d+) \(.*\) \S (\d+)/ or next;
        push @w, $pid if $ppid == $master;
    }
    kill 'KILL', $master, @w;
    GpugateTest::wait_until(10, sub { !grep { kill 0, $_ } $master, @w });
    delete $GpugateTest::STARTED{$master};
    delete $ng->{master};
}

# batch_mark(NODE): where its error and access logs end now, for
# batch_trail() (the error log's through ->mark)
sub batch_mark {
    my ($ng) = @_;
    $ng->mark;
    $ng->{access_mark} = -s $ng->dir . '/logs/access.log' || 0;
}

# the runner's and the tunnel's steps in a node's debug log: each claim
# that got lines, each line's attempt id as it is claimed, sent, answered
# and stored; each request's line, the batch it carried upstream, the
# agent connection it got or its wait, the answer's status, its close
my $TRAIL = qr{
    gpugate\ batch:\ (?:line\ |claimed\ [1-9]|runner|exiting)
  | gpugate\ batch:\ (?:POST|GET|DELETE)
  | http\ request\ line
  | http\ proxy\ header:\ "X-Gpugate-Batch
  | http\ proxy\ status
  | gpugate\ tunnel:\ (?:busy|reserved|request\ waits|dequeued|503
                       |agent\ slot\ \d+\ offered|the\ agent's\ answer
                       |close|reserved\ connection\ lost|parked\ idle
                       |ping,|pong,)
  | http\ close\ request | upstream\ (?:timed|prematurely)
  | \[(?:warn|error|crit|alert|emerg)\]
}x;

# batch_trail(NODE, KEY_ID): what tells how often a line ran, and why,
# when a test finds a line run twice or not at all: the node's trail
# since batch_mark() (above), its access log since then, and the key's
# batches and lines as PostgreSQL has them (attempts, the last attempt's
# id, the lease owner), with any other line still pending or running or
# finished in the last minute (another file's, another runner's)
sub batch_trail {
    my ($ng, $kid) = @_;
    my @trail = grep { /$TRAIL/ } split /\n/, $ng->log;
    s/^\d{4}\/\d\d\/\d\d // for @trail;
    my $access = '';
    if (open my $fh, '<', $ng->dir . '/logs/access.log') {
        seek $fh, $ng->{access_mark} || 0, 0;
        local $/;
        $access = <$fh> // '';
    }
    my $rows = eval { psql(
        "SELECT b.id, b.kind, b.status, b.priority, l.line_no, l.status, "
      . "l.attempts, l.request_id, l.lease_owner, l.status_code, "
      . "to_char(b.created_at, 'HH24:MI:SS.MS') FROM batches b "
      . "JOIN batch_lines l ON l.batch_id = b.id "
      . "WHERE b.api_key_id = $kid ORDER BY b.seq, l.line_no") } // $@;
    my $others = eval { psql(
        "SELECT l.batch_id, l.line_no, l.status, l.attempts, "
      . "l.lease_owner, to_char(l.finished_at, 'HH24:MI:SS.MS') "
      . "FROM batch_lines l JOIN batches b ON b.id = l.batch_id "
      . "WHERE b.api_key_id <> $kid AND (l.status IN ('pending', "
      . "'running') OR l.finished_at > now() - interval '1 minute') "
      . "LIMIT 20") } // $@;
    return join "\n", '--- runner and tunnel trail of the node:', @trail,
        '--- its access log:', $access,
        "--- key ${kid}'s batches and lines in PostgreSQL:", $rows,
        '--- other keys\' lines pending, running or just finished:',
        $others, '';
}

# jsonl(LIST of hashes): the file's text, one object a line
sub jsonl {
    return join '', map { $json->encode($_) . "\n" } @_;
}

# upload(PORT, KEY, TEXT, purpose => 'batch', filename => 'in.jsonl',
# fields => [NAME => VALUE, ...]): POST /v1/files as OpenAI's SDKs send
# it, with more form fields when given; returns (response, decoded)
sub upload {
    my ($port, $key, $text, %o) = @_;
    my $b = 'gpugate' . int(rand(1e9));
    my $purpose = exists $o{purpose} ? $o{purpose} : 'batch';
    my $fn = $o{filename} || 'in.jsonl';
    my $body = '';
    $body .= "--$b\r\nContent-Disposition: form-data; name=\"purpose\""
           . "\r\n\r\n$purpose\r\n" if defined $purpose;
    my @f = @{ $o{fields} || [] };
    while (my ($name, $value) = splice @f, 0, 2) {
        $body .= "--$b\r\nContent-Disposition: form-data; name=\"$name\""
               . "\r\n\r\n$value\r\n";
    }
    $body .= "--$b\r\nContent-Disposition: form-data; name=\"file\"; "
           . "filename=\"$fn\"\r\nContent-Type: application/jsonl\r\n\r\n"
           . "$text\r\n";
    $body .= "--$b--\r\n";
    my $r = http_request($port, 'POST', '/v1/files',
        { Authorization => "Bearer $key",
          'Content-Type' => "multipart/form-data; boundary=$b" },
        $body, 20);
    return ($r, eval { $json->decode($r->{body}) } || {});
}

# api(PORT, KEY, METHOD, PATH, BODY-HASH): returns (response, decoded)
sub api {
    my ($port, $key, $method, $path, $body) = @_;
    my %h = $key ? (Authorization => "Bearer $key") : ();
    $h{'Content-Type'} = 'application/json' if $body;
    my $r = http_request($port, $method, $path, \%h,
                         $body ? $json->encode($body) : undef, 20);
    return ($r, eval { $json->decode($r->{body}) } || {});
}

1;
