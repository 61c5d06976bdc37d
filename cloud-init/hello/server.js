// labctl builtin "hello" app: a dependency-free Node HTTP server for load-balancing labs.
// Answers every path with 200 text/plain naming this VM (env LABCTL_VM) and its hostname, so
// the client can see which backend nginx picked; /healthz answers "ok" for probes.
'use strict';

const http = require('http');
const os = require('os');

const port = Number(process.env.PORT || 3000);
const host = process.env.HOST || undefined; // unset: all interfaces (the LB is on another VM)
const vm = process.env.LABCTL_VM || 'unknown';

const server = http.createServer((req, res) => {
  const path = new URL(req.url || '/', 'http://localhost').pathname;
  const headers = { 'Content-Type': 'text/plain; charset=utf-8', 'X-Labctl-Vm': vm };
  if (path === '/healthz') {
    res.writeHead(200, headers);
    res.end('ok\n');
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
