"""Two-word account names (`gaudy-flute`): readable, unique, valid DNS labels."""

from __future__ import annotations

import secrets

ADJECTIVES = """
able acid aged airy ample amber apt arid ashen astral avid awake azure balmy bare basic bold
brave breezy brief bright brisk broad bronze bubbly busy calm candid carmine cheery chief civic
clean clear clever close cloudy coastal cobalt cosmic cozy crisp curly cyan dainty dapper
daring dear deep deft dewy direct dizzy dotted dreamy dry dusky dusty eager early earthy easy
elder elfin empty epic equal even exact fair fancy fast feisty fervent fiery final fine firm
first fleet fluffy fond free fresh frosty frugal full funny fuzzy gaudy gentle giant gilded
glad glassy gleaming glossy golden grand grassy great green happy hardy hazy hearty hidden
hollow honest humble icy ideal idle indigo inky jade jaunty jolly jovial keen kind lanky large
lavish lazy lean level light lilac limber lively local lofty loud lucid lucky lunar lush magic
major mellow merry mighty mild minty misty modern modest mossy muted narrow neat nimble noble
north novel oaken olive open orange oval pale patient peachy pearly perky plain plucky plush
polar polite proud quick quiet rapid rare ready regal rich rosy round royal ruby rustic sandy
savvy scarlet serene sharp shiny silent silky silver simple sleek slim smooth snowy solar solid
sonic spare spicy spry steady stellar still stormy sturdy sunny super sweet swift tame tawny
teal tender tidy tiny topaz tranquil true tulip twin upbeat urban valid vast velvet vivid warm
wavy wild windy wise witty woolly young zany zesty
""".split()

NOUNS = """
acorn alder anchor anvil apple arbor arrow aspen atlas badger bagel banjo barley basil beacon
beetle bell birch bison blossom bobcat bonsai brook bubble button cactus camel candle canoe
canyon cedar cello cherry cicada cinder clover cobra comet coral cosmos cotton cougar crane
cricket crow cypress daisy delta dingo dolphin dove dragon drum dune eagle echo eel elm ember
falcon fern ferret fig finch fjord flame flute forest fossil fox gecko geyser ginger glacier
gopher grape gravel grove gull harbor hare hawk hazel heron hill hornet iris island ivy jackal
jaguar jasmine jay jelly juniper kayak kelp kestrel kettle kiwi koala lagoon lake lantern larch
lark lemon lily lime linden lotus lynx magpie mango maple marble marten meadow melon mesa mint
mole moose moss moth mule nectar newt nutmeg oak oasis ocean olive onyx orca orchid osprey
otter owl panda panther parrot peach pebble pelican pepper pine planet plum pond poppy prairie
puffin quail quartz rabbit raven reed reef ridge river robin rocket rose saddle sage salmon
sparrow spruce squid starling stone stork summit swan thistle thunder tiger topaz trout tulip
tundra turtle valley violet viper walnut walrus wasp willow wolf wren yak yarrow zebra zephyr
""".split()


def random_name() -> str:
    return f"{secrets.choice(ADJECTIVES)}-{secrets.choice(NOUNS)}"
