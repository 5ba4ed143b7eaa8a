// The dashboard's build: one page, its script and its styles, written into the API package, which serves them at /
// (services/api/algocomp_api/dashboard). No inline script or style is emitted, so the page's Content-Security-Policy
// can allow only 'self'.
import { defineConfig } from "vite";

export default defineConfig({
  esbuild: { jsx: "automatic", jsxImportSource: "preact" },
  build: {
    outDir: "../services/api/algocomp_api/dashboard/static",
    emptyOutDir: true,
    target: "es2020",
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    chunkSizeWarningLimit: 300,
  },
});
