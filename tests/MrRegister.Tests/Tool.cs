using ModelCar.TestSupport;

namespace ModelCar.MrRegister.Tests;

/// <summary>Runs the PUBLISHED mr-register binary against a fake registry.</summary>
public static class Tool
{
    public const string Name = "mr-register";

    /// <summary>The environment of every run: no token path from the test host leaks in.</summary>
    public static Dictionary<string, string?> Env(string? tokenPathVariable = null) => new()
    {
        ["KF_PIPELINES_SA_TOKEN_PATH"] = tokenPathVariable,
    };

    public static List<string> Args(FakeModelRegistry fake, string subcommand, params string[] rest)
    {
        var args = new List<string> { subcommand, "--server", fake.Url.ToString() };
        if (fake.Url.Scheme == "http")
        {
            args.Add("--tls-verify=false");
        }
        args.AddRange(rest);
        return args;
    }

    public static Task<ToolResult> RunAsync(FakeModelRegistry fake, string subcommand, params string[] rest) =>
        ToolRunner.RunAsync(Name, Args(fake, subcommand, rest), Env(), TimeSpan.FromMinutes(2));

    public static Task<ToolResult> RegisterAsync(FakeModelRegistry fake, params string[] rest) => RunAsync(fake, "register", rest);

    public static readonly string[] Granite = ["--model-name", "granite-3.1-8b", "--version-name", "quantized-w4a16-2501", "--uri", "oci://quay.io/org/granite:w4a16-2501"];

    /// <summary>Parses the `key=value` lines of register's stdout.</summary>
    public static Dictionary<string, string> Ids(ToolResult r) => r.StdOut.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
        .Select(l => l.Split('=', 2)).Where(p => p.Length == 2).ToDictionary(p => p[0], p => p[1]);
}
