/**
 * GraphiQL, from `@graphql-yoga/render-graphiql` (no CDN: it works without internet),
 * served as a small page and its files. The package's own page inlines everything, 9 MB
 * that a browser fetches again on every visit; here its script, styles, icon and editor
 * workers are files named by their content, compressed once (brotli or gzip, whichever
 * the browser takes) and cached by the browser for a year, while the page itself (a few
 * KB, the tabs among them) is revalidated every time. The package is imported when a
 * server with GraphiQL is made: its strings (about 30 MB of heap) stay out of production
 * processes, which serve no GraphiQL.
 */
import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { promisify } from 'node:util';
import { brotliCompress, constants, gzip } from 'node:zlib';
import type { GraphiQLOptions } from 'graphql-yoga';
import { wantsPage } from './http-auth.js';

/** Where GraphiQL's files are served. */
export const GRAPHIQL_ASSETS = '/graphiql/';

type Encoding = 'br' | 'gzip' | 'identity';

interface Asset {
  type: string;
  body: Buffer;
  /** Compressed on first demand, once per encoding. */
  encoded: Partial<Record<Encoding, Promise<Buffer>>>;
}

/** brotli quality 5: 1.3 MB for the 5 MB script in 1 s; quality 11 saves another 0.2 MB in 28 s. */
const BROTLI = { params: { [constants.BROTLI_PARAM_QUALITY]: 5 } };
const compress: Record<Exclude<Encoding, 'identity'>, (body: Buffer) => Promise<Buffer>> = {
  br: (body) => promisify(brotliCompress)(body, BROTLI),
  gzip: (body) => promisify(gzip)(body, { level: 6 }),
};

/** Content-hashed names never change content: a browser may keep them for good. */
const IMMUTABLE = 'public, max-age=31536000, immutable';

export interface Graphiql {
  /** Answers GraphiQL's page (a browser's GET of the GraphQL path) or one of its files; false for any other request. */
  serve(req: IncomingMessage, res: ServerResponse, path: string | undefined): boolean;
}

interface Files {
  assets: Map<string, Asset>;
  script: string;
  styles: string;
  icon: string;
  workers: Record<'editorWorkerService' | 'json' | 'graphql', string>;
}

let files: Promise<Files> | undefined;

/** The package's parts as files, hashed once per process (and compressed once, on demand, for every server of it). */
function graphiqlFiles(): Promise<Files> {
  files ??= import('@graphql-yoga/render-graphiql/graphiql').then(
    ({ css, editorWorkerService, favicon, graphqlWorker, js, jsonWorker }) => {
      const assets = new Map<string, Asset>();
      const add = (name: string, extension: string, type: string, body: Buffer) => {
        const hash = createHash('sha256').update(body).digest('base64url').slice(0, 16);
        const path = `${GRAPHIQL_ASSETS}${name}.${hash}.${extension}`;
        assets.set(path, { type, body, encoded: {} });
        return path;
      };
      const scriptType = 'text/javascript; charset=utf-8';
      return {
        assets,
        script: add('graphiql', 'js', scriptType, Buffer.from(js)),
        styles: add('graphiql', 'css', 'text/css; charset=utf-8', Buffer.from(css)),
        icon: favicon.startsWith('data:image/x-icon;base64,')
          ? add('favicon', 'ico', 'image/x-icon', Buffer.from(favicon.slice(favicon.indexOf(',') + 1), 'base64'))
          : favicon,
        workers: {
          editorWorkerService: add('editor.worker', 'js', scriptType, Buffer.from(editorWorkerService)),
          json: add('json.worker', 'js', scriptType, Buffer.from(jsonWorker)),
          graphql: add('graphql.worker', 'js', scriptType, Buffer.from(graphqlWorker)),
        },
      };
    },
  );
  return files;
}

export function createGraphiql(graphqlPath: string, options: GraphiQLOptions): Graphiql {
  // Loaded now, so that the first visit does not wait for it.
  const ready = graphiqlFiles().then(({ assets, ...names }) => ({
    assets,
    page: { type: 'text/html; charset=utf-8', body: Buffer.from(html(options, names)), encoded: {} } satisfies Asset,
  }));
  ready.catch(() => undefined); // a failed load is answered 500 to each request

  function send(req: IncomingMessage, res: ServerResponse, asset: Asset, cacheControl: string) {
    const encoding = accepted(req.headers['accept-encoding']);
    const body = encoding === 'identity' ? Promise.resolve(asset.body) : (asset.encoded[encoding] ??= compress[encoding](asset.body));
    body.then(
      (bytes) => {
        res.statusCode = 200;
        res.setHeader('content-type', asset.type);
        res.setHeader('cache-control', cacheControl);
        res.setHeader('vary', 'accept-encoding');
        if (encoding !== 'identity') res.setHeader('content-encoding', encoding);
        res.setHeader('content-length', bytes.length);
        res.end(req.method === 'HEAD' ? undefined : bytes);
      },
      () => {
        // zlib failing on a buffer in memory would be a bug; the browser may still have it plain.
        asset.encoded[encoding] = undefined;
        failed(res);
      },
    );
  }

  return {
    serve(req, res, path) {
      if (path === graphqlPath && wantsPage(req)) {
        // Revalidated on every visit: the page names the files of this version.
        ready.then(
          ({ page }) => send(req, res, page, 'no-cache'),
          () => failed(res),
        );
        return true;
      }
      if (!path?.startsWith(GRAPHIQL_ASSETS) || (req.method !== 'GET' && req.method !== 'HEAD')) return false;
      ready.then(
        ({ assets }) => {
          const asset = assets.get(path);
          if (asset) return send(req, res, asset, IMMUTABLE);
          res.statusCode = 404;
          res.end();
        },
        () => failed(res),
      );
      return true;
    },
  };
}

function failed(res: ServerResponse): void {
  res.statusCode = 500;
  res.end();
}

/** brotli if the browser takes it, else gzip, else the bytes as they are. */
export function accepted(header: string | string[] | undefined): Encoding {
  const offered = new Map<string, number>();
  for (const part of String(header ?? '').split(',')) {
    const [name, ...params] = part.trim().toLowerCase().split(';');
    const q = params.map((p) => /^\s*q=([\d.]+)\s*$/.exec(p)?.[1]).find((v) => v !== undefined);
    if (name) offered.set(name, q === undefined ? 1 : Number(q));
  }
  const takes = (name: string) => (offered.get(name) ?? offered.get('*') ?? 0) > 0;
  if (takes('br')) return 'br';
  if (takes('gzip')) return 'gzip';
  return 'identity';
}

/**
 * The page of `@graphql-yoga/render-graphiql`, with its inlined parts replaced by the
 * files above: the editor's workers load from their own URLs rather than from blobs.
 */
function html(options: GraphiQLOptions, files: Omit<Files, 'assets'>): string {
  // JSON inside a <script>: no "</script>" (nor "<!--") may end it early.
  const json = (value: unknown) => JSON.stringify(value).replace(/</g, '\\u003c');
  const title = (options.title ?? 'GraphiQL').replace(/[<>&"]/g, (c) => `&#${c.charCodeAt(0)};`);
  return `<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <title>${title}</title>
    <link rel="icon" href="${files.icon}" />
    <link rel="stylesheet" href="${files.styles}" />
  </head>
  <body id="body" class="no-focus-outline">
    <noscript>You need to enable JavaScript to run this app.</noscript>
    <div id="root"></div>
    <script>
      const workers = ${json(files.workers)};
      self['MonacoEnvironment'] = { globalAPI: false, getWorkerUrl: (moduleId, label) => workers[label] };
    </script>
    <script src="${files.script}"></script>
    <script>
      YogaGraphiQL.renderYogaGraphiQL(document.querySelector('#root'), ${json(options)});
    </script>
  </body>
</html>
`;
}
