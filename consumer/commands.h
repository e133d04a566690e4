/* The `recstream COMMAND` entry points. Each takes the arguments after the
 * command name (argv[0] is the command) and returns the process exit code:
 * 0 success, 1 failure at run time, 2 a bad flag or configuration. */
#ifndef RECSTREAM_COMMANDS_H
#define RECSTREAM_COMMANDS_H

int cmd_run(int argc, char **argv);
int cmd_demo(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_broker(int argc, char **argv);
int cmd_ab_report(int argc, char **argv);

#endif
