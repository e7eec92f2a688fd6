// ESLint: typescript-eslint's recommended type-checked rules over everything
// the type checker sees (src, test, bench, examples), plus the project's
// structural limits for runtime code: functions fit on one screen and
// runtime modules import each other without cycles.
import js from "@eslint/js";
import tseslint from "typescript-eslint";
import { importX } from "eslint-plugin-import-x";
import { createTypeScriptImportResolver } from "eslint-import-resolver-typescript";

export default tseslint.config(
  {
    ignores: ["dist/", "node_modules/", "coverage/", "test/fixtures/syntax-error.*"],
  },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
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
