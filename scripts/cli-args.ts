/** The command-line shape our scripts share: `<command> [--flag] [--option value] …`. */
export function cliArgs(argv = process.argv.slice(2)) {
  return {
    args: argv,
    command: argv[0],
    flag: (name: string) => argv.includes(name),
    option: (name: string): string | undefined => {
      const i = argv.indexOf(name);
      return i === -1 ? undefined : argv[i + 1];
    },
  };
}
