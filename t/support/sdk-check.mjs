// The official SDKs, unmodified, against the gateway: each call's
// outcome as one JSON line {name, ok, detail}; 082-sdk.t asserts them.
// Usage: node sdk-check.mjs BASE_URL API_KEY MODEL (NODE_PATH: the
// folder where npm installed "openai" and "@anthropic-ai/sdk").

import { createRequire } from 'node:module';
import path from 'node:path';

const require = createRequire(path.join(process.env.GG_NPM_DIR, 'x.js'));
const OpenAI = require('openai').default ?? require('openai');
const { toFile } = require('openai');
const AnthropicMod = require('@anthropic-ai/sdk');
const Anthropic = AnthropicMod.default ?? AnthropicMod;

const [base, key, model] = process.argv.slice(2);
const openai = new OpenAI({ baseURL: `${base}/v1`, apiKey: key,
                            maxRetries: 0 });
const anthropic = new Anthropic({ baseURL: base, apiKey: key,
                                  maxRetries: 0 });

async function check(name, fn) {
    let line;
    try {
        const detail = await fn();
        line = { name, ok: true, detail };
    } catch (e) {
        line = { name, ok: false, detail: String(e && e.stack || e) };
    }
    console.log(JSON.stringify(line));
}

await check('responses.create', async () => {
    const r = await openai.responses.create({ model, input: 'hello you' });
    return { text: r.output_text, usage: r.usage };
});

await check('responses.create stream', async () => {
    const s = await openai.responses.create({ model, input: 'hello you',
                                              stream: true });
    const types = [];
    let usage = null;
    for await (const ev of s) {
        types.push(ev.type);
        if (ev.type === 'response.completed') usage = ev.response.usage;
    }
    return { types, usage };
});

await check('images.generate', async () => {
    const r = await openai.images.generate({ model, prompt: 'a cat', n: 2 });
    return { n: r.data.length, b64: r.data[0].b64_json.length > 0 };
});

await check('audio.transcriptions.create', async () => {
    const audio = Buffer.alloc(100000, 7);
    const r = await openai.audio.transcriptions.create({
        model, file: await toFile(audio, 'a.wav', { type: 'audio/wav' }) });
    return { text: r.text };
});

await check('audio.speech.create', async () => {
    const r = await openai.audio.speech.create({ model, voice: 'alloy',
                                                 input: 'hello there' });
    const buf = Buffer.from(await r.arrayBuffer());
    return { bytes: buf.length, type: r.headers.get('content-type') };
});

await check('messages.create', async () => {
    const m = await anthropic.messages.create({
        model, max_tokens: 16,
        messages: [{ role: 'user', content: 'hi there' }] });
    return { type: m.type, text: m.content[0].text, usage: m.usage };
});

await check('messages.stream', async () => {
    const s = anthropic.messages.stream({
        model, max_tokens: 16,
        messages: [{ role: 'user', content: 'hi there' }] });
    let text = '';
    s.on('text', (t) => { text += t; });
    const m = await s.finalMessage();
    return { text, usage: m.usage, stop: m.stop_reason };
});

await check('messages.create refused', async () => {
    try {
        await anthropic.messages.create({
            model: 'nope-model', max_tokens: 16,
            messages: [{ role: 'user', content: 'hi' }] });
        return { status: 200 };
    } catch (e) {
        return { status: e.status, type: e.error && e.error.error
                                          && e.error.error.type };
    }
});
