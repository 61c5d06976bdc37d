// labctl builtin "hello" app: a dependency-free Node HTTP server for load-balancing labs.
// Answers every path with 200 text/plain naming this VM (env LABCTL_VM) and its hostname, so
// the client can see which backend nginx picked; /healthz answers "ok" for probes.
// /labctl-check-<hex>.txt answers the file of that name in this app's own folder (404 if there is
// none): `labctl check` writes one per run with a token of this VM, to see the app's own answer
// come through the domain (a header like X-Labctl-Vm is easy to fake in nginx; the token is not).
'use strict';

const fs = require('fs');
const http = require('http');
const os = require('os');
const path = require('path');

const port = Number(process.env.PORT || 3000);
const host = process.env.HOST || undefined; // unset: all interfaces (the LB is on another VM)
const vm = process.env.LABCTL_VM || 'unknown';
const CHECK_FILE = /^\/(labctl-check-[0-9a-f]{16,64}\.txt)$/; // the only files it serves

const server = http.createServer((req, res) => {
  const pathname = new URL(req.url || '/', 'http://localhost').pathname;
  const headers = { 'Content-Type': 'text/plain; charset=utf-8', 'X-Labctl-Vm': vm };
  if (pathname === '/healthz') {
    res.writeHead(200, headers);
    res.end('ok\n');
    return;
  }
  const check = CHECK_FILE.exec(pathname);
  if (check) {
    fs.readFile(path.join(__dirname, check[1]), (error, content) => {
      res.writeHead(error ? 404 : 200, { ...headers, 'Cache-Control': 'no-store' });
      res.end(error ? 'no such check file\n' : content);
    });
    return;
  }
  res.writeHead(200, headers);
  res.end(`hello from ${vm} (${os.hostname()}), pid ${process.pid}\n`);
});

server.listen(port, host, () => {
  console.log(`labctl hello: ${vm} listening on ${host || '*'}:${port}`);
});

// pm2 sends SIGINT on stop/reload: finish in-flight requests, then exit.
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
