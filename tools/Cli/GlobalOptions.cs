using System.CommandLine;

namespace ModelCar.Common.Cli;

public enum LogFormat
{
    Text,
    Json,
}

/// <summary>The options every tool has. They are recursive so subcommands (mr-register) see them too.</summary>
public static class GlobalOptions
{
    public static Option<bool> Verbose { get; } = new("--verbose")
    {
        Description = "Debug logging, and a stack trace with any error.",
        Recursive = true,
    };

    public static Option<LogFormat> LogFormat { get; } = new("--log-format")
    {
        Description = "Log format on stderr: text or json.",
        DefaultValueFactory = _ => Cli.LogFormat.Text,
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
