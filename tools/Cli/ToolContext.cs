using System.CommandLine;
using Microsoft.Extensions.Logging;
using ModelCar.Common.Logging;

namespace ModelCar.Common.Cli;

/// <summary>What an action gets: logger, results writer, stdout, and the parse result.</summary>
public sealed class ToolContext : IDisposable
{
    internal ToolContext(string toolName, ParseResult parseResult, TextWriter stdout, TextWriter stderr)
    {
        ToolName = toolName;
        ParseResult = parseResult;
        Out = stdout;
        Error = stderr;
        Verbose = parseResult.GetValue(GlobalOptions.Verbose);
        var format = parseResult.GetValue(GlobalOptions.LogFormat);
        LoggerFactory = LogSetup.CreateFactory(format, Verbose, stderr);
        Logger = LoggerFactory.CreateLogger(toolName);
        Results = new TektonResults(parseResult.GetValue(GlobalOptions.ResultsDir)?.FullName);
    }

    public string ToolName { get; }
    public ParseResult ParseResult { get; }
    public TextWriter Out { get; }
    public TextWriter Error { get; }
    public bool Verbose { get; }
    public ILoggerFactory LoggerFactory { get; }
    public ILogger Logger { get; }
    public TektonResults Results { get; }

    public T? Get<T>(Option<T> option) => ParseResult.GetValue(option);

    public T Required<T>(Option<T> option) =>
        ParseResult.GetValue(option) ?? throw new UsageException($"option '{option.Name}' is required");

    /// <summary>Writes one result line on stdout (the digest, the ids: what scripts capture).</summary>
    public void WriteResult(string line) => Out.WriteLine(line);

    public void Dispose() => LoggerFactory.Dispose();
}
