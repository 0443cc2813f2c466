"""Hearing what the models make: MIDI -> audio with FluidSynth (render), seed 001's lo-fi mix
(lofi, vinyl), audio -> MIDI with basic-pitch (transcribe), text -> audio with MusicGen and the
text-to-lo-fi path (text2audio). Parameters: conf/audio/default.yaml -> spec.AudioSpec."""
