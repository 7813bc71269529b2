#!/usr/bin/env node
// A registry far away, on loopback: a pass-through that holds every request
// DELAY_MS before it forwards it, so each round trip a client makes costs what
// it costs against a registry across a network (the bench's own registry is a
// millisecond away, where a saved round trip does not show). Counts requests
// by method and prints the counts, then zeroes them, on SIGUSR2; LOG=1 prints
// each request as it arrives.
//
// Usage: node bench/far-registry.cjs LISTEN_PORT UPSTREAM_HOST:PORT DELAY_MS
//   e.g. node bench/far-registry.cjs 5901 127.0.0.1:5001 25 &
//        buildlite build ... (FROM 127.0.0.1:5901/library/busybox:latest)
//        kill -USR2 %1    # GET 1 / HEAD 1 ...
'use strict';
const http = require('node:http');

const [port, upstream, delay] = [Number(process.argv[2]), process.argv[3] ?? '', Number(process.argv[4])];
const [upHost, upPort] = upstream.split(':');
if (!Number.isInteger(port) || !upHost || !Number(upPort) || !(delay >= 0)) {
  process.stderr.write('usage: far-registry.cjs LISTEN_PORT UPSTREAM_HOST:PORT DELAY_MS\n');
  process.exit(2);
}

let counts = {};
http
  .createServer((req, res) => {
    counts[req.method] = (counts[req.method] ?? 0) + 1;
    if (process.env.LOG) process.stdout.write(`${req.method} ${req.url}\n`);
    setTimeout(() => {
      const up = http.request({ host: upHost, port: Number(upPort), method: req.method, path: req.url, headers: req.headers }, (ur) => {
        res.writeHead(ur.statusCode ?? 502, ur.headers);
        ur.pipe(res);
      });
      up.on('error', () => res.destroy());
      req.pipe(up);
    }, delay);
  })
  .listen(port, '127.0.0.1');

process.on('SIGUSR2', () => {
  process.stdout.write(`${Object.entries(counts).map(([m, n]) => `${m} ${n}`).join(' / ') || 'none'}\n`);
  counts = {};
});
