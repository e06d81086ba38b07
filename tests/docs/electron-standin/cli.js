#!/usr/bin/env node
'use strict';
// `electron DIR`: runs the app's main script (package.json "main") in this node process.
const { readFileSync } = require('node:fs');
const { resolve } = require('node:path');

const dir = resolve(process.argv[2] ?? '.');
const { main = 'index.js' } = JSON.parse(readFileSync(resolve(dir, 'package.json'), 'utf8'));
process.chdir(dir);
require('./index.js').startApp(dir);
require(resolve(dir, main));
