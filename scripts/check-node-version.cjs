// Runs before `npm test`, `npm start` and `npm run sandbox` (npm pre-scripts), on whatever Node is installed.
// The project runs its TypeScript directly with Node 24's type stripping; an older Node would fail later with a
// confusing error about ".ts" files, so say plainly which Node to install. Written in plain, old JavaScript
// (no modules, no modern syntax) so that any Node can run it.
var fs = require("fs");
var path = require("path");

var pkg = JSON.parse(fs.readFileSync(path.join(__dirname, "..", "package.json"), "utf8"));
var wanted = (pkg.engines && pkg.engines.node) || ">=24";
var minimum = Number((/(\d+)/.exec(wanted) || [0, 24])[1]);
var current = process.versions.node;
var major = Number(current.split(".")[0]);

if (!(major >= minimum)) {
  process.stderr.write(
    "gitlab-entra-bot needs Node.js " + minimum + " or newer (package.json engines: \"" + wanted + "\"); " +
      "this is Node.js " + current + " (" + process.execPath + ").\n" +
      "Install Node.js " + minimum + " (https://nodejs.org/en/download, or `nvm install " + minimum + "`, " +
      "or `npm install -g node@" + minimum + "`) and run the command again.\n",
  );
  process.exit(1);
}
