// A native addon is compiled machine code in a `.node` file: it cannot go into
// a JavaScript bundle, and a bundle that still tries to load it fails only at
// run time, on the server. So the build refuses it, naming the package.

import type { OnResolveArgs, PartialMessage, Plugin } from "esbuild";

/** The loaders packages use to find their compiled addon at run time. */
const ADDON_LOADERS =
  /^(bindings|node-gyp-build|node-gyp-build-optional-packages|node-pre-gyp|@mapbox\/node-pre-gyp|prebuild-install)$/;

export const refuseNativeAddons: Plugin = {
  name: "tsgi-refuse-native-addons",
  setup(build) {
    build.onResolve({ filter: /\.node$/ }, (args) => ({
      errors: [refusal(`${args.path} is a native addon`, args)],
    }));
    build.onResolve({ filter: ADDON_LOADERS }, (args) => ({
      errors: [refusal(`it loads a native addon through "${args.path}"`, args)],
    }));
  },
};

function refusal(what: string, args: OnResolveArgs): PartialMessage {
  const owner = packageOf(args.importer);
  const who = owner === undefined ? args.importer : `package "${owner}" (${args.importer})`;
  const instead =
    owner === undefined ? "" : `, or replace "${owner}" with a pure-JavaScript package`;
  return {
    text:
      `cannot bundle ${who}: ${what}, compiled code that cannot go into one JavaScript file. ` +
      `Deploy the application with its node_modules and run it with \`tsgi cgi\`${instead}.`,
  };
}

/** The package a file belongs to: the name after the last node_modules/ in its path. */
export function packageOf(file: string): string | undefined {
  const match = /.*[\\/]node_modules[\\/]((?:@[^\\/]+[\\/])?[^\\/]+)/.exec(file);
  return match?.[1]?.replace(/\\/g, "/");
}
