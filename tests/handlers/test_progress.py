"""attach_progress: Ignite's tqdm bar on a MONAI SupervisedTrainer shows the description and the running loss."""

import torch


def test_progress_bar_shows_desc_and_loss(capsys):
    from monai.engines import SupervisedTrainer

    from medgen.handlers.progress import attach_progress

    net = torch.nn.Linear(2, 1)
    data = [{"image": torch.rand(4, 2), "label": torch.rand(4, 1)} for _ in range(3)]
    trainer = SupervisedTrainer(
        device=torch.device("cpu"),
        max_epochs=2,
        train_data_loader=data,
        network=net,
        optimizer=torch.optim.SGD(net.parameters(), lr=0.1),
        loss_function=torch.nn.MSELoss(),
        decollate=False,
    )
    assert attach_progress(trainer, "unit-test bar") is trainer
    trainer.run()
    err = capsys.readouterr().err
    assert "unit-test bar" in err and "loss=" in err and "[2/2]" in err
    assert trainer.state.iteration == 6
