using System.CommandLine;
using ModelCar.Common.Cli;

namespace ModelCar.RegistryPush;

/// <summary>Push an OCI image (oci: layout or oci-archive:) to one or more registries.</summary>
public static class RegistryPushCommand
{
    public const string Name = "registry-push";

    public static RootCommand Create()
    {
        var root = ToolApp.CreateRoot("Push an OCI image (oci: layout or oci-archive:) to one or more registries.");
        root.SetToolAction(Name, (ctx, ct) => throw new ToolException("registry-push is not implemented yet"));
        return root;
    }
}
