// The npm "openai" SDK, unmodified, reading the reasoning split: a chat
// answer's message.reasoning_content and a stream's
// delta.reasoning_content.  Prints one JSON line per call {name, ok,
// detail}; 117-reasoning-sdk.t asserts them.
// Usage: node reasoning-sdk.mjs BASE_URL MODEL (GG_NPM_DIR: the folder
// where npm installed "openai").

import { createRequire } from 'node:module';
import path from 'node:path';

const require = createRequire(path.join(process.env.GG_NPM_DIR, 'x.js'));
const OpenAI = require('openai').default ?? require('openai');

const [base, model] = process.argv.slice(2);
const openai = new OpenAI({ baseURL: `${base}/v1`, apiKey: 'none',
                            maxRetries: 0,
                            defaultHeaders: { 'X-Mock-Think': '3',
                                              'X-Mock-Think-Bytes': '1',
                                              'X-Mock-Tokens': '40' } });
const messages = [{ role: 'user', content: 'Say hello' }];

async function check(name, fn) {
    let line;
    try {
        line = { name, ok: true, detail: await fn() };
    } catch (e) {
        line = { name, ok: false, detail: String(e && e.stack || e) };
    }
    console.log(JSON.stringify(line));
}

await check('chat.completions.create', async () => {
    const r = await openai.chat.completions.create({ model, messages });
    const m = r.choices[0].message;
    return { reasoning: m.reasoning_content, content: m.content };
});

await check('chat.completions.create stream', async () => {
    const s = await openai.chat.completions.create({ model, messages,
                                                     stream: true });
    let reasoning = '', content = '', chunks = 0;
    for await (const c of s) {
        chunks++;
        const d = c.choices[0] ? c.choices[0].delta : {};
        reasoning += d.reasoning_content ?? '';
        content += d.content ?? '';
    }
    return { reasoning, content, chunks };
});
