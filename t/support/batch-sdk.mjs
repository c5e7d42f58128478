// The official "openai" SDK, unmodified, against the Batch API: each
// call's outcome as one JSON line {name, ok, detail}; 108-batch-sdk.t
// asserts them.  Usage: node batch-sdk.mjs BASE_URL API_KEY (GG_NPM_DIR:
// the folder where npm installed "openai").

import { createRequire } from 'node:module';
import path from 'node:path';

const require = createRequire(path.join(process.env.GG_NPM_DIR, 'x.js'));
const OpenAI = require('openai').default ?? require('openai');
const { toFile } = require('openai');

const [base, key] = process.argv.slice(2);
const openai = new OpenAI({ baseURL: `${base}/v1`, apiKey: key,
                            maxRetries: 0 });

async function check(name, fn) {
    let line, detail;
    try {
        detail = await fn();
        line = { name, ok: true, detail };
    } catch (e) {
        line = { name, ok: false, detail: String(e && e.stack || e) };
    }
    console.log(JSON.stringify(line));
    return detail;
}

const lines = [];
for (let i = 1; i <= 5; i++) {
    lines.push(JSON.stringify({
        custom_id: `sdk-${i}`, method: 'POST', url: '/v1/chat/completions',
        body: { model: 'mock-model', max_tokens: i,
                messages: [{ role: 'user', content: 'hi' }] } }));
}

const file = await check('files.create', async () => {
    const f = await openai.files.create({
        file: await toFile(Buffer.from(lines.join('\n') + '\n'),
                           'sdk.jsonl'),
        purpose: 'batch' });
    return { id: f.id, bytes: f.bytes, purpose: f.purpose,
             filename: f.filename };
});

await check('files.retrieve', async () => {
    const f = await openai.files.retrieve(file.id);
    return { id: f.id, object: f.object };
});

const batch = await check('batches.create', async () => {
    const b = await openai.batches.create({
        input_file_id: file.id, endpoint: '/v1/chat/completions',
        completion_window: '24h', metadata: { run: 'sdk' } });
    return { id: b.id, status: b.status };
});

const done = await check('batches.retrieve', async () => {
    const deadline = Date.now() + 30000;
    let b, polls = 0;
    for (;;) {
        b = await openai.batches.retrieve(batch.id);
        polls++;
        if (['completed', 'failed', 'expired', 'cancelled']
                .includes(b.status) || Date.now() > deadline) {
            break;
        }
        await new Promise((r) => setTimeout(r, 100));
    }
    return { status: b.status, counts: b.request_counts, polls,
             output_file_id: b.output_file_id,
             error_file_id: b.error_file_id, metadata: b.metadata };
});

await check('files.content', async () => {
    const r = await openai.files.content(done.output_file_id);
    const text = await r.text();
    return text.trim().split('\n').map((l) => {
        const o = JSON.parse(l);
        return { custom_id: o.custom_id, status: o.response.status_code,
                 tokens: o.response.body.usage.completion_tokens };
    });
});

await check('batches.list', async () => {
    const ids = [];
    for await (const b of openai.batches.list({ limit: 1 })) {
        ids.push(b.id);
        if (ids.length >= 3) {
            break;
        }
    }
    return { ids };
});

await check('batches.cancel', async () => {
    try {
        await openai.batches.cancel(batch.id);
        return { status: 'no error' };
    } catch (e) {
        return { status: e.status, code: e.code };
    }
});
