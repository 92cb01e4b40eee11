// The npm that `pip install` uses (pyproject.toml, [tool.hatch.build.hooks.jupyter-builder]).
// hatch-jupyter-builder's npm_builder always runs `<npm> install`, and `npm install` may
// rewrite package-lock.json (new platform packages, newer matches of the ranges): the build
// must install exactly the lockfile as committed, so `install` runs as `npm ci`, which
// fails when package.json and the lockfile disagree. Every other command is npm's own.
import { spawnSync } from 'node:child_process';

const args = process.argv.slice(2);
if (args[0] === 'install' && args.length === 1) {
  args[0] = 'ci';
}
const npm = spawnSync('npm', args, { stdio: 'inherit', shell: process.platform === 'win32' });
if (npm.error) {
  console.error(`nbtrail: npm could not be started (${npm.error.message}); install Node.js and npm`);
}
process.exit(npm.status ?? 1);
