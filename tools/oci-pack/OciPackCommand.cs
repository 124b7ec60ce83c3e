using System.CommandLine;
using ModelCar.Common.Cli;

namespace ModelCar.OciPack;

/// <summary>Turn a model directory into a KServe ModelCar OCI image (layout or oci-archive).</summary>
public static class OciPackCommand
{
    public const string Name = "oci-pack";

    public static RootCommand Create()
    {
        var root = ToolApp.CreateRoot("Turn a model directory into a KServe ModelCar OCI image (layout or oci-archive).");
        root.SetToolAction(Name, (ctx, ct) => throw new ToolException("oci-pack is not implemented yet"));
        return root;
    }
}
