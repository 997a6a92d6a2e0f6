import { defineConfig } from "vitest/config";

// Built into the Python package (served by `convscope serve`); only sources are committed.
export default defineConfig({
  base: "./",
  build: {
    outDir: "../src/convscope/server/static",
    emptyOutDir: true,
    chunkSizeWarningLimit: 1200,
  },
  test: {
    environment: "node",
    include: ["test/**/*.test.ts"],
  },
});
