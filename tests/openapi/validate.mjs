// Validates an OpenAPI document (a JSON file) against the OpenAPI 3.x schemas; prints the
// version and `valid`, or the errors, and exits 1 when the document is not valid.
// Used by tests/integration/openapi_test.cpp; its package is installed by ./dev.
import { readFile } from "node:fs/promises";
import { Validator } from "@seriousme/openapi-schema-validator";

const file = process.argv[2];
if (!file) {
  console.error("usage: node validate.mjs FILE.json");
  process.exit(2);
}
const validator = new Validator();
const result = await validator.validate(JSON.parse(await readFile(file, "utf8")));
if (result.valid) {
  console.log(`OpenAPI ${validator.version}: valid`);
} else {
  console.log(`OpenAPI ${validator.version}: not valid`);
  console.log(JSON.stringify(result.errors, null, 2));
  process.exit(1);
}
