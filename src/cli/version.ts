/** The package version, as `blufio --version` and the daemon's `health` report it. */
export const VERSION = '0.1.0';
