// ESLint: typescript-eslint's recommended type-checked rules over everything
// the type checker sees (src, test, bench, examples, scripts, bin), plus the
// project's structural limits for runtime code: functions fit on one screen
// and runtime modules import each other without cycles. The JavaScript test
// fixtures are applications written the way users write them, some odd on
// purpose, and outside the type-checked program: they get the untyped rules.
import js from "@eslint/js";
import tseslint from "typescript-eslint";
import { importX } from "eslint-plugin-import-x";
import { createTypeScriptImportResolver } from "eslint-import-resolver-typescript";

/**
 * The Node.js globals the JavaScript files use, as ESLint's `no-undef` must
 * know them (the `globals` package would list them all, but it is not a
 * dependency; the type checker knows them anyway wherever it runs).
 */
const NODE_GLOBALS = Object.fromEntries(
  [
    "AbortController",
    "AbortSignal",
    "Buffer",
    "URL",
    "URLSearchParams",
    "clearInterval",
    "clearTimeout",
    "console",
    "performance",
    "process",
    "setImmediate",
    "setInterval",
    "setTimeout",
  ].map((name) => [name, /** @type {const} */ ("readonly")]),
);
const COMMONJS_GLOBALS = Object.fromEntries(
  ["__dirname", "__filename", "exports", "module", "require"].map((name) => [
    name,
    /** @type {const} */ ("readonly"),
  ]),
);

export default tseslint.config(
  {
    ignores: ["dist/", "node_modules/", "coverage/", "test/fixtures/syntax-error.*"],
  },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: {
        // examples/hello.js sits beside hello.ts, which the program takes instead.
        projectService: { allowDefaultProject: ["examples/hello.js"] },
        tsconfigRootDir: import.meta.dirname,
      },
    },
  },
  {
    files: ["**/*.{js,cjs,mjs}"],
    languageOptions: { globals: NODE_GLOBALS },
  },
  {
    files: [
      "**/*.cjs",
      "bin/tsgi.js",
      "scripts/import-meta-url.js",
      "test/fixtures/build/native/**/*.js",
    ],
    languageOptions: { sourceType: "commonjs", globals: { ...NODE_GLOBALS, ...COMMONJS_GLOBALS } },
    rules: { "@typescript-eslint/no-require-imports": "off" },
  },
  {
    // The tests build applications, bodies and inputs as async functions and
    // async iterables without awaiting anything on purpose: gateways must
    // take async shapes whether or not they ever wait.
    files: ["test/**/*.ts"],
    rules: { "@typescript-eslint/require-await": "off" },
  },
  {
    // CommonJS written in TypeScript imports with require().
    files: ["**/*.cts"],
    rules: { "@typescript-eslint/no-require-imports": "off" },
  },
  {
    files: ["test/fixtures/**/*.{js,cjs,mjs}"],
    ...tseslint.configs.disableTypeChecked,
  },
  {
    files: ["src/**/*.ts"],
    plugins: { "import-x": importX },
    settings: {
      "import-x/resolver-next": [createTypeScriptImportResolver()],
      "import-x/parsers": { "@typescript-eslint/parser": [".ts"] },
    },
    rules: {
      "max-lines-per-function": ["error", { max: 60 }],
      "import-x/no-cycle": "error",
    },
  },
);
