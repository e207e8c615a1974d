// The chat from Node.js with the real Convex client (`npm install convex`, Node.js 22+).
//
//   CONVEX_URL=http://127.0.0.1:3210 node client.mjs [picture.png]
//
// 1. subscribes to the messages of #general (`ConvexClient.onUpdate`), printing each
//    message as it arrives;
// 2. sends "@bot hello": `messages:send` schedules the bot's reply a second later;
// 3. sends a picture (the file given, else a built-in 1x1 PNG) in three steps: a
//    mutation makes an upload URL, `fetch` POSTs the bytes there, another mutation
//    posts the storage id; then downloads it again from the URL the query returns;
// 4. waits for the bot's reply to arrive through the subscription, and exits.
//
// Our functions are Python, so there is no generated `api` object: `anyApi` names
// them the same way (`api.messages.send` is "messages:send").

import { readFileSync } from "node:fs";
import { basename } from "node:path";
import { ConvexClient } from "convex/browser";
import { anyApi as api } from "convex/server";

const url = process.env.CONVEX_URL ?? "http://127.0.0.1:3210";
const channel = process.env.CHANNEL ?? "general";
const author = process.env.AUTHOR ?? "ada";
const picture = process.argv[2];
const TINY_PNG =
  "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP438AAAAQBAYDFKhhdAAAAAElFTkSuQmCC";
const image = picture ? readFileSync(picture) : Buffer.from(TINY_PNG, "base64");
const imageName = picture ? basename(picture) : "tiny.png";

const client = new ConvexClient(url);
const started = Date.now();
const arrivedAt = new Map(); // message id -> when the subscription delivered it
const waiters = [];

// Rejects after `ms` unless settled before; unref: a pending timer never keeps Node running.
function within(ms, what, executor) {
  const promise = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${what} after ${ms} ms`)), ms);
    timer.unref();
    executor((value) => (clearTimeout(timer), resolve(value)));
  });
  promise.catch(() => {}); // reported where it is awaited
  return promise;
}

// The first message arriving from now on that `test` accepts.
const arrival = (test, what) =>
  within(10_000, what, (resolve) => waiters.push({ test, resolve }));
let firstResult;
const subscribed = within(10_000, `answer from ${url}`, (resolve) => (firstResult = resolve));

function show(message) {
  const text = message.image ? `[image] ${message.url}` : message.body;
  console.log(`#${channel} ${message.author}: ${text}`);
}

// Live: the server pushes a new result whenever a message is added to the channel.
const unsubscribe = client.onUpdate(api.messages.list, { channel }, (messages) => {
  for (const message of messages) {
    if (arrivedAt.has(message._id)) continue;
    arrivedAt.set(message._id, Date.now());
    show(message);
    for (const waiter of waiters.filter((w) => w.test(message))) {
      waiters.splice(waiters.indexOf(waiter), 1);
      waiter.resolve(message);
    }
  }
  firstResult();
});

try {
  await subscribed;
  // 2. The bot answers "@bot ..." messages through a scheduled function.
  const reply = arrival((m) => m.author === "bot", "bot reply");
  const sentAt = Date.now();
  const sentId = await client.mutation(api.messages.send, { channel, author, body: "@bot hello" });

  // 3. A picture: upload URL, POST the bytes, post the storage id.
  const uploadUrl = await client.mutation(api.messages.generate_upload_url, {});
  const uploaded = await fetch(uploadUrl, {
    method: "POST",
    headers: { "Content-Type": "image/png" },
    body: image,
  });
  const answer = await uploaded.json(); // {"storageId"}, or {"code", "message"}
  if (!uploaded.ok) throw new Error(`upload refused: ${uploaded.status} ${answer.message}`);
  const { storageId } = answer;
  console.log(`uploaded ${imageName} (${image.length} bytes): storage id ${storageId}`);
  const posted = arrival((m) => m.image === storageId, "image message");
  await client.mutation(api.messages.send_image, { channel, author, storageId });
  const message = await posted;
  const downloaded = Buffer.from(await (await fetch(message.url)).arrayBuffer());
  const same = downloaded.equals(image) ? "same bytes as uploaded" : "DIFFERENT bytes";
  console.log(`downloaded ${message.url}: ${downloaded.length} bytes, ${same}`);

  // 4. The reply was scheduled by `send` and arrives on its own, about a second later.
  const botMessage = await reply;
  const seconds = ((arrivedAt.get(botMessage._id) - sentAt) / 1000).toFixed(2);
  console.log(`the bot replied ${seconds} s after message ${sentId}: "${botMessage.body}"`);
  if (!downloaded.equals(image)) process.exitCode = 1;
} catch (error) {
  console.error(`failed after ${Date.now() - started} ms: ${error.message ?? error}`);
  process.exitCode = 1;
} finally {
  unsubscribe();
  await client.close();
}
