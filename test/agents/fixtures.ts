// Shared texts for the agent unit tests.

/** A realistic multi-paragraph article. Its subject: urban heat islands and how cities cool them. */
export const HEAT_ISLAND_ARTICLE = `Cities are warmer than the countryside around them, a pattern known as the urban heat island.
On a summer afternoon, dense city centres can be several degrees hotter than nearby farmland.
The reporter who first described the effect, Luke Howard, was a pharmacist by trade and an amateur meteorologist.

The urban heat island forms because city surfaces absorb and store heat. Asphalt, concrete and dark roofs soak up sunlight during the day and release that heat slowly at night, so city temperatures stay high after sunset.
Tall buildings also trap heat between them and block the wind that would otherwise cool the streets.
Air conditioners, cars and factories add waste heat of their own.

The extra heat has real costs for city residents. Heat waves in cities raise the number of hospital admissions, and older residents without air conditioning face the greatest danger.
Higher city temperatures also increase electricity demand for cooling, which strains power grids during the hottest hours.
Some economists estimate the annual cost in the billions of dollars.

Cities have begun to fight the urban heat island with trees, green roofs and reflective surfaces. Planting street trees shades asphalt and cools the air through evaporation, lowering local temperatures by several degrees.
Cool roofs painted white reflect sunlight instead of absorbing heat, and they reduce the need for air conditioning in the buildings below.
The mayor's office said the programme was popular with voters.

My neighbour, for what it is worth, prefers to spend August at the seaside and ignores the debate entirely.`;

/** One sentence per line, each 12 words long: handy for exact budget checks. */
export const TWELVE_WORD_SENTENCES = [
  "The river flooded the lower town after three days of heavy rain.",
  "Engineers inspected the old stone bridge and found cracks in two arches.",
  "The council closed the bridge and opened a temporary ferry for commuters.",
  "Local shops reported fewer customers while the flood water slowly receded again.",
  "Volunteers filled sandbags at the school gym through the long wet night.",
].join(" ");
