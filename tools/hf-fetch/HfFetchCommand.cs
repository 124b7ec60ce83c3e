using System.CommandLine;
using ModelCar.Common.Cli;

namespace ModelCar.HfFetch;

/// <summary>Download a Hugging Face Hub repository at a revision: resumable, sha256-verified.</summary>
public static class HfFetchCommand
{
    public const string Name = "hf-fetch";

    public static RootCommand Create()
    {
        var root = ToolApp.CreateRoot("Download a Hugging Face Hub repository at a revision: resumable, sha256-verified.");
        root.SetToolAction(Name, (ctx, ct) => throw new ToolException("hf-fetch is not implemented yet"));
        return root;
    }
}
