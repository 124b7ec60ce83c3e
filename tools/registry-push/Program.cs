using ModelCar.Common.Cli;

return await ToolApp.RunAsync("registry-push", ModelCar.RegistryPush.RegistryPushCommand.Create(), args);
