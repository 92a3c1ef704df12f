import { defineConfig } from "vite";
import { svelte } from "@sveltejs/vite-plugin-svelte";

// The popover is served from the app's own assets: no dev server, no remote code.
export default defineConfig({
  plugins: [svelte()],
  clearScreen: false,
  build: { outDir: "dist", emptyOutDir: true, target: "es2022" },
  test: { environment: "happy-dom", include: ["src/**/*.test.ts"], setupFiles: ["src/test/setup.ts"] },
  resolve: process.env.VITEST ? { conditions: ["browser"] } : undefined,
});
