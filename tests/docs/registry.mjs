// A local npm registry for the docs' scenarios: `npm install polar-license` as pasted from a
// README resolves, by name, to the packed tarball of this checkout (target/npm/*.tgz: the
// package is not published yet); every other package is answered by the registry npm is
// configured with (its packument is fetched and passed on, so its tarballs still come from
// there).
import { createServer } from 'node:http';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { basename } from 'node:path';

/** Starts the registry; resolves to `{ url, close() }`. `tarballs`: paths of .tgz files. */
export async function startRegistry(tarballs) {
  const upstream = execFileSync('npm', ['config', 'get', 'registry'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
    .trim()
    .replace(/\/$/, '');
  const local = new Map();
  for (const path of tarballs) {
    const data = readFileSync(path);
    const manifest = JSON.parse(execFileSync('tar', ['-xOzf', path, 'package/package.json'], { encoding: 'utf8' }));
    local.set(manifest.name, { data, manifest, file: basename(path) });
  }
  const server = createServer(async (req, res) => {
    try {
      const path = decodeURIComponent(new URL(req.url, 'http://x').pathname).replace(/^\//, '');
      const own = local.get(path);
      if (own) {
        const { manifest, data, file } = own;
        const version = {
          ...manifest,
          _id: `${manifest.name}@${manifest.version}`,
          dist: {
            tarball: `${url}/-/files/${file}`,
            shasum: createHash('sha1').update(data).digest('hex'),
            integrity: `sha512-${createHash('sha512').update(data).digest('base64')}`,
          },
        };
        send(res, 200, 'application/json', JSON.stringify({
          name: manifest.name,
          'dist-tags': { latest: manifest.version },
          versions: { [manifest.version]: version },
        }));
        return;
      }
      const tarball = [...local.values()].find((p) => path === `-/files/${p.file}`);
      if (tarball) {
        send(res, 200, 'application/octet-stream', tarball.data);
        return;
      }
      const answer = await fetch(`${upstream}${req.url}`, {
        method: req.method,
        headers: { accept: req.headers.accept ?? 'application/json' },
      });
      const body = Buffer.from(await answer.arrayBuffer());
      send(res, answer.status, answer.headers.get('content-type') ?? 'application/json', body);
    } catch (e) {
      send(res, 502, 'text/plain', String(e));
    }
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${server.address().port}`;
  return { url, close: () => new Promise((resolve) => server.close(resolve)) };
}

function send(res, status, type, body) {
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) });
  res.end(body);
}
