/**
 * The page, served by vite, with Runway behind it on the same origin: `/graphql` (HTTP
 * and its websockets) goes to RUNWAY_URL. The browser never makes a cross-origin request.
 */
import { defineConfig } from 'vite';

const runway = process.env['RUNWAY_URL'] ?? 'http://localhost:4000';
const proxy = { '/graphql': { target: runway, ws: true } };

export default defineConfig({
  // React's automatic JSX runtime, through vite's own esbuild: no plugin needed.
  esbuild: { jsx: 'automatic' },
  server: { proxy },
  preview: { proxy, port: 5173 },
});
