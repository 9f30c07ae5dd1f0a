// The OpenFn packages live in bench/openfn/node_modules, not beside these scripts, so both
// sides import them by path.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

export const load = async (openfnDir, name) => {
  const root = join(openfnDir, 'node_modules', name);
  const pkg = JSON.parse(await readFile(join(root, 'package.json'), 'utf8'));
  return import(pathToFileURL(join(root, pkg.module ?? pkg.main)).href);
};
