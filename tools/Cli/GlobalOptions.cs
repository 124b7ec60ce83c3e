using System.CommandLine;
using ModelCar.Common.Logging;

namespace ModelCar.Common.Cli;

/// <summary>The options every tool has. They are recursive so subcommands (mr-register) see them too.</summary>
public static class GlobalOptions
{
    public static Option<bool> Verbose { get; } = new("--verbose")
    {
        Description = "Debug logging, and a stack trace with any error.",
        Recursive = true,
    };

    public static Option<Logging.LogFormat> LogFormat { get; } = new("--log-format")
    {
        Description = "Log format on stderr: text or json.",
        DefaultValueFactory = _ => Logging.LogFormat.Text,
        Recursive = true,
    };

    public static Option<DirectoryInfo?> ResultsDir { get; } = new("--results-dir")
    {
        Description = "Write one file per Tekton result into DIR (e.g. /tekton/results).",
        HelpName = "DIR",
        Recursive = true,
    };

    public static void AddTo(Command command)
    {
        command.Options.Add(Verbose);
        command.Options.Add(LogFormat);
        command.Options.Add(ResultsDir);
    }
}
