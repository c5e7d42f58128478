// The official "openai" SDK, unmodified, on the Batch API's file routes:
// files.create, files.list through the SDK's own pages (limit 1, so that
// it follows "after"), files.delete and files.retrieve of the deleted
// file (its NotFound status).  Each call's outcome as one JSON line
// {name, ok, detail}; 114-batch-files-admin.t asserts them.  Usage: node
// files-sdk.mjs BASE_URL API_KEY (GG_NPM_DIR: where npm installed it).

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

const line = JSON.stringify({
    custom_id: 'sdk-1', method: 'POST', url: '/v1/chat/completions',
    body: { model: 'mock-model', messages: [{ role: 'user', content: 'hi' }] }
});

const id = await check('files.create', async () => {
    const f = await openai.files.create({
        file: await toFile(Buffer.from(line + '\n'), 'sdk.jsonl'),
        purpose: 'batch' });
    return f.id;
});

await check('files.list', async () => {
    const ids = [];
    for await (const f of openai.files.list({ limit: 1 })) {
        ids.push(f.id);
    }
    return { ids };
});

await check('files.delete', async () => {
    const d = await openai.files.delete(id);
    return { id: d.id, object: d.object, deleted: d.deleted };
});

await check('files.retrieve deleted', async () => {
    try {
        await openai.files.retrieve(id);
        return 200;
    } catch (e) {
        return e.status;
    }
});
