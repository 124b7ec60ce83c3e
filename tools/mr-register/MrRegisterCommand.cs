using System.CommandLine;
using ModelCar.Common.Cli;

namespace ModelCar.MrRegister;

/// <summary>Register a model, version and artifact in the Kubeflow Model Registry, idempotently.</summary>
public static class MrRegisterCommand
{
    public const string Name = "mr-register";

    public static RootCommand Create()
    {
        var root = ToolApp.CreateRoot("Register a model, version and artifact in the Kubeflow Model Registry, idempotently.");
        root.SetToolAction(Name, (ctx, ct) => throw new ToolException("mr-register is not implemented yet"));
        return root;
    }
}
